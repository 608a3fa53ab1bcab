/*
 * ui.c - the curses half of the interface (see ui.h): terminal set-up and
 * restore, drawing the transcript, the approval prompt, the input and the
 * status line, and reading keys (bracketed paste, Alt+Enter, mouse wheel).
 */
#include "ui/ui.h"

#include "common/err.h"
#include "common/text.h"
#include "ui/history.h"
#include "ui/input.h"

#include <curses.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FRAME_NS 16000000ull /* at most ~60 frames a second */
#define KEY_PASTE_BEGIN (KEY_MAX + 1)
#define KEY_PASTE_END (KEY_MAX + 2)

struct ui {
    struct ui_opts o;
    struct transcript tr;
    struct input in;
    char history[4096]; /* the history file, "" none */
    struct ui_status st;
    char hint[256];
    char *ask_q, *ask_detail;
    int asking, ask_show;
    const char *const *commands;
    long scroll;     /* rows above the bottom; 0 follows the stream */
    long last_total; /* rows at the last draw, to keep a scrolled view still */
    int tr_h;        /* transcript rows at the last draw */
    char find_last[128];
    long find_hit;
    int dirty;
    uint64_t last_draw;
    int ctrl_c_armed;
    int pasting;
    uint64_t paste_ns; /* when the last pasted byte came */
    struct buf paste;
    int color;
    attr_t attr[ST_NSTYLES];
    int spin;
};

static volatile sig_atomic_t g_active;    /* curses is on */
static volatile sig_atomic_t g_modes_set; /* bracketed paste / mouse sequences sent */

static void put_raw(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(STDOUT_FILENO, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void modes_off(void)
{
    if (g_modes_set) {
        put_raw("\033[?2004l\033[?1006l\033[?1000l");
        g_modes_set = 0;
    }
}

static void modes_on(const struct ui *u)
{
    /* bracketed paste: a pasted Enter never submits */
    put_raw("\033[?2004h");
    (void)u;
    g_modes_set = 1;
}

void ui_restore_terminal(void)
{
    if (!g_active)
        return;
    g_active = 0;
    modes_off();
    endwin();
}

static void on_fatal(int sig)
{
    ui_restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    atexit(ui_restore_terminal);
    int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGABRT, SIGBUS, SIGFPE };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESETHAND;
        sigaction(sigs[i], &sa, NULL);
    }
}

static void setup_colors(struct ui *u)
{
    static const struct {
        short fg;
        attr_t a, mono;
    } pal[ST_NSTYLES] = {
        [ST_NORMAL] = { -1, 0, 0 },
        [ST_DIM] = { -1, A_DIM, A_DIM },
        [ST_BOLD] = { -1, A_BOLD, A_BOLD },
        [ST_ITALIC] = { -1, A_ITALIC, A_ITALIC },
        [ST_CODE] = { COLOR_CYAN, 0, 0 },
        [ST_HEAD] = { COLOR_MAGENTA, A_BOLD, A_BOLD | A_UNDERLINE },
        [ST_QUOTE] = { -1, A_DIM | A_ITALIC, A_DIM },
        [ST_USER] = { COLOR_BLUE, A_BOLD, A_BOLD },
        [ST_ADD] = { COLOR_GREEN, 0, A_BOLD },
        [ST_DEL] = { COLOR_RED, 0, A_DIM },
        [ST_HUNK] = { COLOR_CYAN, A_DIM, A_DIM },
        [ST_ERR] = { COLOR_RED, A_BOLD, A_BOLD },
        [ST_OK] = { COLOR_GREEN, 0, 0 },
        [ST_TOOL] = { COLOR_YELLOW, A_BOLD, A_BOLD },
        [ST_KEYWORD] = { COLOR_MAGENTA, A_BOLD, A_BOLD },
        [ST_STRING] = { COLOR_GREEN, 0, 0 },
        [ST_COMMENT] = { -1, A_DIM | A_ITALIC, A_DIM },
        [ST_WARN] = { COLOR_YELLOW, A_BOLD, A_BOLD | A_REVERSE },
        [ST_BAR] = { -1, A_REVERSE, A_REVERSE },
    };
    const char *nc = getenv("NO_COLOR");
    int want = u->o.color;
    if (want < 0)
        want = !(nc && nc[0]);
    u->color = want && has_colors();
    if (u->color) {
        start_color();
        use_default_colors();
    }
    for (int s = 0; s < ST_NSTYLES; s++) {
        if (u->color && pal[s].fg >= 0 && s < COLOR_PAIRS - 1) {
            init_pair((short)(s + 1), pal[s].fg, -1);
            u->attr[s] = COLOR_PAIR(s + 1) | pal[s].a;
        } else {
            u->attr[s] = u->color ? pal[s].a : pal[s].mono;
        }
    }
}

int ui_open(struct ui **out, const struct ui_opts *o)
{
    struct ui *u = calloc(1, sizeof *u);
    if (!u)
        return err_set(ERR_NOMEM, "ui_open: out of memory");
    u->o = *o;
    tr_init(&u->tr);
    in_init(&u->in, o->chip_lines);
    if (o->history && *o->history) {
        snprintf(u->history, sizeof u->history, "%s", o->history);
        if (hist_load(&u->in, u->history) < 0)
            err_clear(); /* an unreadable history is an empty one */
    }
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        free(u);
        return err_set(ERR_UNSUPPORTED, "ui: the interface needs a terminal (stdin and stdout)");
    }
    /* a lone Esc must stop generation now, not after ncurses' 1 s default */
    set_escdelay(25);
    if (!initscr()) {
        free(u);
        return err_set(ERR_IO, "ui: cannot initialise the terminal (TERM=%s)",
                       getenv("TERM") ? getenv("TERM") : "");
    }
    g_active = 1;
    install_signals();
    raw();
    noecho();
    nonl(); /* Enter arrives as \r, Ctrl+J as \n: two different keys */
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    setup_colors(u);
    define_key("\033[200~", KEY_PASTE_BEGIN);
    define_key("\033[201~", KEY_PASTE_END);
    if (o->mouse)
        mousemask(BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    modes_on(u);
    u->dirty = 1;
    *out = u;
    return 0;
}

void ui_close(struct ui *u)
{
    ui_restore_terminal();
    if (!u)
        return;
    tr_free(&u->tr);
    in_free(&u->in);
    buf_free(&u->paste);
    free(u->ask_q);
    free(u->ask_detail);
    free(u);
}

struct transcript *ui_transcript(struct ui *u) { return &u->tr; }

void ui_dirty(struct ui *u) { u->dirty = 1; }

void ui_set_status(struct ui *u, const struct ui_status *st)
{
    u->st = *st;
    u->dirty = 1;
}

const struct ui_status *ui_status(const struct ui *u) { return &u->st; }

void ui_hint(struct ui *u, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->hint, sizeof u->hint, fmt, ap);
    va_end(ap);
    u->dirty = 1;
}

int ui_ask(struct ui *u, const char *question, const char *details)
{
    free(u->ask_q);
    free(u->ask_detail);
    u->ask_q = strdup(question ? question : "");
    u->ask_detail = strdup(details ? details : "");
    if (!u->ask_q || !u->ask_detail)
        return err_set(ERR_NOMEM, "ui_ask: out of memory");
    u->asking = 1;
    u->ask_show = 0;
    u->scroll = 0;
    u->dirty = 1;
    return 0;
}

void ui_ask_done(struct ui *u)
{
    u->asking = 0;
    u->dirty = 1;
}

void ui_set_commands(struct ui *u, const char *const *names) { u->commands = names; }

int ui_set_input(struct ui *u, const char *text)
{
    in_clear(&u->in);
    u->dirty = 1;
    return in_insert(&u->in, text, strlen(text));
}

/* ---- drawing */

static void draw_sline(struct ui *u, int y, const struct sline *l, const struct uw_line *v, int w)
{
    move(y, 0);
    if (l) {
        int x = v->indent < w ? v->indent : 0;
        move(y, x);
        size_t i = v->off, end = v->off + v->len;
        while (i < end) {
            int st = l->s[i];
            size_t j = i;
            while (j < end && l->s[j] == st)
                j++;
            attrset(u->attr[st < ST_NSTYLES ? st : 0]);
            addnstr(l->t + i, (int)(j - i));
            i = j;
        }
        attrset(A_NORMAL);
    }
    clrtoeol();
}

struct rowctx {
    struct ui *u;
    int y0, w;
};

static void row_cb(void *ud, int y, const struct sline *l, const struct uw_line *v)
{
    struct rowctx *c = ud;
    draw_sline(c->u, c->y0 + y, l, v, c->w);
}

static void draw_status(struct ui *u, int y, int w)
{
    const struct ui_status *s = &u->st;
    char line[512], a[32], b[32], br[64];
    int k = snprintf(line, sizeof line, " %s · %s · %s · %s", s->model[0] ? s->model : "no model",
                     s->backend[0] ? s->backend : "-", s->thinking ? "thinking" : "no-think",
                     s->mode[0] ? s->mode : "default");
    if (s->sandbox[0] && k < (int)sizeof line)
        k += snprintf(line + k, sizeof line - (size_t)k, " · sandbox %s", s->sandbox);
    if (s->ctx_max > 0 && k < (int)sizeof line) {
        sl_fmt_count(a, sizeof a, s->ctx_used);
        sl_fmt_count(b, sizeof b, s->ctx_max);
        sl_bar(br, sizeof br, (double)s->ctx_used / (double)s->ctx_max, 8);
        k += snprintf(line + k, sizeof line - (size_t)k, " · ctx %s %s/%s", br, a, b);
    }
    if (s->tok_s > 0 && k < (int)sizeof line)
        k += snprintf(line + k, sizeof line - (size_t)k, " · %.1f tok/s", s->tok_s);
    if (s->reused > 0 && k < (int)sizeof line) {
        sl_fmt_count(a, sizeof a, s->reused);
        k += snprintf(line + k, sizeof line - (size_t)k, " · reused %s", a);
    }
    attrset(u->attr[ST_BAR]);
    move(y, 0);
    for (int x = 0; x < w; x++)
        addch(' ');
    attrset(A_NORMAL);
    struct sline l = { 0 };
    if (sl_puts(&l, line, ST_BAR) == 0) {
        int used;
        size_t fit = uw_fit(l.t, l.len, w, &used);
        move(y, 0);
        attrset(u->attr[ST_BAR]);
        addnstr(l.t, (int)fit);
        attrset(A_NORMAL);
    }
    sl_free(&l);
}

/* The row above the input: what is going on, or a hint. */
static void draw_activity(struct ui *u, int y, int w)
{
    static const char *const spin[] = { "⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏" };
    const struct ui_status *s = &u->st;
    char line[512];
    int k = 0;
    line[0] = 0;
    if (s->busy || s->activity[0]) {
        k = snprintf(line, sizeof line, "%s %s", s->busy ? spin[u->spin % 10] : "·",
                     s->activity[0] ? s->activity : "working");
        if (k < (int)sizeof line)
            k += sl_fmt_prefill(line + k, sizeof line - (size_t)k, s->prefill_done,
                                s->prefill_total, s->prefill_eta_s);
        if (s->busy && k < (int)sizeof line)
            k += snprintf(line + k, sizeof line - (size_t)k, " · Esc stops");
    }
    if (u->hint[0] && k < (int)sizeof line)
        snprintf(line + k, sizeof line - (size_t)k, "%s%s", k ? " · " : "", u->hint);
    move(y, 0);
    attrset(u->attr[ST_DIM]);
    for (int x = 0; x < w; x++)
        addstr("─");
    attrset(A_NORMAL);
    if (line[0]) {
        struct sline l = { 0 };
        if (sl_puts(&l, " ", ST_DIM) == 0 && sl_puts(&l, line, ST_DIM) == 0 &&
            sl_puts(&l, " ", ST_DIM) == 0) {
            int used;
            size_t fit = uw_fit(l.t, l.len, w > 2 ? w - 2 : w, &used);
            move(y, 1);
            attrset(u->attr[ST_DIM]);
            addnstr(l.t, (int)fit);
            attrset(A_NORMAL);
        }
        sl_free(&l);
    }
}

void ui_draw(struct ui *u)
{
    int H, W;
    getmaxyx(stdscr, H, W);
    if (H < 3 || W < 8) {
        erase();
        mvaddstr(0, 0, "lode: window too small");
        refresh();
        u->dirty = 0;
        return;
    }
    erase();
    /* input */
    int iw = W - 2;
    struct uw_line *il = NULL;
    int nil = 0, crow = 0, ccol = 0;
    char sq[512];
    const char *itext = in_text(&u->in);
    if (u->in.searching) {
        const char *m = in_search_match(&u->in);
        snprintf(sq, sizeof sq, "(search)`%s': %s", u->in.query.p ? u->in.query.p : "", m ? m : "");
        for (char *p = sq; *p; p++)
            if (*p == '\n')
                *p = ' ';
        itext = sq;
        int used;
        size_t fit = uw_fit(sq, strlen(sq), iw, &used);
        il = malloc(sizeof *il);
        if (il) {
            il[0] = (struct uw_line){ 0, fit, 0, used };
            nil = 1;
        }
        ccol = used;
    } else if (in_layout(&u->in, iw, &il, &nil, &crow, &ccol) < 0) {
        nil = 0;
    }
    int rows_in = nil > crow + 1 ? nil : crow + 1;
    int max_in = H / 3 > 1 ? H / 3 : 1;
    int shown_in = rows_in < max_in ? rows_in : max_in;
    int first_in = crow >= shown_in ? crow - shown_in + 1 : 0;
    int y_status = H - 1;
    int y_in = y_status - shown_in;
    int y_act = y_in - 1;
    /* approval prompt */
    struct sl_list ask = { 0 };
    int nask = 0;
    struct uw_line *askv = NULL;
    int naskv = 0;
    if (u->asking) {
        struct sline *l = sl_add(&ask);
        if (l)
            sl_puts(l, u->ask_q, ST_WARN);
        if ((l = sl_add(&ask)))
            sl_puts(l, "  [y] yes   [n] no   [a] always (this session)   [d] details", ST_BOLD);
        if (u->ask_show && u->ask_detail && u->ask_detail[0]) {
            const char *p = u->ask_detail;
            while (*p) {
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                if ((l = sl_add(&ask))) {
                    sl_puts(l, "  ", ST_DIM);
                    sl_put(l, p, n, ST_DIM);
                    l->indent = 2;
                }
                p += n + (e ? 1 : 0);
            }
        }
        /* wrap into rows, keeping at most half the screen */
        for (int i = 0; i < ask.n; i++) {
            struct uw_line *v;
            int nv;
            if (uw_wrap(ask.v[i].t, ask.v[i].len, W, ask.v[i].indent, &v, &nv) < 0)
                continue;
            struct uw_line *p = realloc(askv, sizeof *askv * (size_t)(naskv + nv + 1));
            if (p) {
                askv = p;
                for (int k = 0; k < nv; k++) {
                    askv[naskv] = v[k];
                    askv[naskv].cols = i; /* which line (reused field) */
                    naskv++;
                }
            }
            free(v);
        }
        nask = naskv < H / 2 ? naskv : H / 2;
    }
    int y_ask = y_act - nask;
    int tr_h = y_ask;
    if (tr_h < 0)
        tr_h = 0;
    u->tr_h = tr_h;
    /* transcript */
    long total = tr_layout(&u->tr, W);
    if (u->scroll > 0 && total > u->last_total)
        u->scroll += total - u->last_total; /* new text must not move what is being read */
    u->last_total = total;
    long maxscroll = total > tr_h ? total - tr_h : 0;
    if (u->scroll > maxscroll)
        u->scroll = maxscroll;
    if (u->scroll < 0)
        u->scroll = 0;
    long first = total > tr_h ? total - tr_h - u->scroll : 0;
    struct rowctx rc = { u, 0, W };
    tr_rows(&u->tr, first, tr_h, row_cb, &rc);
    if (u->scroll > 0 && tr_h > 0) {
        char m[64];
        snprintf(m, sizeof m, " ↑ %ld more rows below · PgDn ", u->scroll);
        int mw = uw_width(m, strlen(m));
        move(tr_h - 1, W > mw ? W - mw : 0);
        attrset(u->attr[ST_BAR]);
        addstr(m);
        attrset(A_NORMAL);
    }
    for (int i = 0; i < nask; i++) {
        struct sline *l = &ask.v[askv[i].cols];
        struct uw_line v = askv[i];
        draw_sline(u, y_ask + i, l, &v, W);
    }
    sl_list_free(&ask);
    free(askv);
    if (y_act >= 0)
        draw_activity(u, y_act, W);
    for (int r = 0; r < shown_in; r++) {
        int li = first_in + r;
        move(y_in + r, 0);
        attrset(u->attr[ST_USER]);
        addstr(li == 0 ? "› " : "  ");
        attrset(A_NORMAL);
        if (li < nil)
            addnstr(itext + il[li].off, (int)il[li].len);
        clrtoeol();
    }
    free(il);
    draw_status(u, y_status, W);
    if (u->asking) {
        curs_set(0);
    } else {
        curs_set(1);
        move(y_in + crow - first_in, 2 + ccol < W ? 2 + ccol : W - 1);
    }
    refresh();
    u->dirty = 0;
    u->last_draw = time_ns();
}

struct findctx {
    const char *needle;
    long row, before, hit;
};

static void find_row(void *ud, int y, const struct sline *l, const struct uw_line *v)
{
    struct findctx *f = ud;
    long row = f->row++;
    if (!l || row >= f->before)
        return;
    /* the needle may not span a wrap: a row is searched on its own */
    size_t n = strlen(f->needle);
    for (size_t i = v->off; i + n <= v->off + v->len; i++)
        if (!strncasecmp(l->t + i, f->needle, n)) {
            f->hit = row;
            return;
        }
}

int ui_find(struct ui *u, const char *needle)
{
    int H, W;
    getmaxyx(stdscr, H, W);
    (void)H;
    if (!needle[0])
        return 0;
    long total = tr_layout(&u->tr, W);
    long first = total > u->tr_h ? total - u->tr_h - u->scroll : 0;
    /* a new search starts from the bottom of the view; the same one again
     * goes on above its last match */
    long before = first + u->tr_h;
    if (!strcmp(needle, u->find_last) && u->find_hit >= 0 && u->find_hit < before)
        before = u->find_hit;
    struct findctx f = { needle, 0, before, -1 };
    tr_rows(&u->tr, 0, total > 0x7fffffff ? 0x7fffffff : (int)total, find_row, &f);
    snprintf(u->find_last, sizeof u->find_last, "%s", needle);
    u->find_hit = f.hit;
    if (f.hit < 0)
        return 0;
    /* the match becomes the top row (or as near as the end allows) */
    u->scroll = total - u->tr_h - f.hit;
    if (u->scroll < 0)
        u->scroll = 0;
    u->dirty = 1;
    return 1;
}

/* ---- keys */

static void suspend(struct ui *u)
{
    modes_off();
    endwin();
    g_active = 0;
    raise(SIGSTOP);
    /* resumed */
    g_active = 1;
    refresh();
    modes_on(u);
    clearok(stdscr, TRUE);
    u->dirty = 1;
}

void ui_leave(struct ui *u)
{
    modes_off();
    endwin();
    g_active = 0;
}

void ui_enter(struct ui *u)
{
    g_active = 1;
    refresh();
    modes_on(u);
    clearok(stdscr, TRUE);
    u->dirty = 1;
}

static void common_prefix(char *acc, const char *s)
{
    size_t i = 0;
    while (acc[i] && acc[i] == s[i])
        i++;
    acc[i] = 0;
}

/* Tab: /command names, or @path in the current directory tree. */
static void complete(struct ui *u)
{
    struct input *in = &u->in;
    const char *t = in_text(in);
    if (t[0] == '/' && !strchr(t, ' ') && in->cur == in->b.len && u->commands) {
        char acc[64] = "";
        int n = 0;
        char list[256] = "";
        for (int i = 0; u->commands[i]; i++) {
            if (strncmp(u->commands[i], t + 1, in->b.len - 1))
                continue;
            if (n++ == 0)
                snprintf(acc, sizeof acc, "%s", u->commands[i]);
            else
                common_prefix(acc, u->commands[i]);
            size_t k = strlen(list);
            snprintf(list + k, sizeof list - k, "%s/%s", k ? " " : "", u->commands[i]);
        }
        if (n == 0)
            return;
        in_clear(in);
        in_insert(in, "/", 1);
        in_insert(in, acc, strlen(acc));
        if (n == 1)
            in_insert(in, " ", 1);
        else
            ui_hint(u, "%s", list);
        return;
    }
    /* @path: the word before the cursor */
    size_t s = in->cur;
    while (s > 0 && t[s - 1] != ' ' && t[s - 1] != '\n')
        s--;
    if (t[s] != '@')
        return;
    char word[1024];
    size_t wl = in->cur - s - 1;
    if (wl >= sizeof word)
        return;
    memcpy(word, t + s + 1, wl);
    word[wl] = 0;
    char dir[1024] = ".";
    const char *base = word;
    char *slash = strrchr(word, '/');
    if (slash) {
        size_t dl = (size_t)(slash - word);
        if (dl == 0)
            snprintf(dir, sizeof dir, "/");
        else
            snprintf(dir, sizeof dir, "%.*s", (int)dl, word);
        base = slash + 1;
    }
    DIR *d = opendir(dir);
    if (!d)
        return;
    char acc[256] = "";
    int n = 0, isdir = 0;
    char list[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && base[0] != '.')
            continue;
        if (strncmp(e->d_name, base, strlen(base)))
            continue;
        if (n++ == 0) {
            snprintf(acc, sizeof acc, "%s", e->d_name);
            isdir = e->d_type == DT_DIR;
        } else {
            common_prefix(acc, e->d_name);
        }
        size_t k = strlen(list);
        if (k < sizeof list - 1)
            snprintf(list + k, sizeof list - k, "%s%s", k ? " " : "", e->d_name);
    }
    closedir(d);
    if (n == 0)
        return;
    size_t bl = strlen(base);
    if (strlen(acc) > bl)
        in_insert(in, acc + bl, strlen(acc) - bl);
    if (n == 1)
        in_insert(in, isdir ? "/" : " ", 1);
    else
        ui_hint(u, "%s", list);
}

static int submit(struct ui *u, struct ui_ev *ev)
{
    struct input *in = &u->in;
    if (in_empty(in))
        return 0;
    /* a trailing backslash asks for a newline, in every terminal */
    if (in->cur == in->b.len && in->b.p[in->b.len - 1] == '\\') {
        in_backspace(in);
        in_insert(in, "\n", 1);
        return 0;
    }
    if (u->history[0] && hist_append(u->history, in_text(in)) < 0)
        err_clear(); /* the message matters, its history line does not */
    char *text;
    if (in_take(in, &text) < 0)
        return 0;
    ev->kind = UI_EV_SUBMIT;
    ev->text = text;
    u->scroll = 0;
    u->hint[0] = 0;
    return 1;
}

static void scroll_by(struct ui *u, long d)
{
    u->scroll += d;
    if (u->scroll < 0)
        u->scroll = 0;
    u->dirty = 1;
}

/* Handles one key; returns 1 when ev holds something for the caller. */
static int key(struct ui *u, int r, wint_t c, struct ui_ev *ev)
{
    struct input *in = &u->in;
    int H = LINES;
    u->dirty = 1;
    if (u->pasting) {
        if (r == KEY_CODE_YES && c == KEY_PASTE_END) {
            u->pasting = 0;
            in_paste(in, u->paste.p ? u->paste.p : "", u->paste.len);
            buf_reset(&u->paste);
        } else if (r == OK) {
            u->paste_ns = time_ns();
            char mb[4];
            int k = utf8_encode((uint32_t)c, mb);
            buf_append(&u->paste, mb, (size_t)k);
        }
        return 0;
    }
    if (r == KEY_CODE_YES && c != KEY_BTAB)
        u->ctrl_c_armed = 0;
    if (r == KEY_CODE_YES) {
        switch (c) {
        case KEY_RESIZE: clearok(stdscr, TRUE); return 0;
        case KEY_PASTE_BEGIN:
            u->pasting = 1;
            u->paste_ns = time_ns();
            buf_reset(&u->paste);
            return 0;
        case KEY_PASTE_END: return 0;
        case KEY_BTAB: ev->kind = UI_EV_MODE; return 1;
        case KEY_UP: in_up(in); return 0;
        case KEY_DOWN: in_down(in); return 0;
        case KEY_LEFT: in_left(in); return 0;
        case KEY_RIGHT: in_right(in); return 0;
        case KEY_HOME: in_home(in); return 0;
        case KEY_END: in_end(in); return 0;
        case KEY_DC: in_delete(in); return 0;
        case KEY_BACKSPACE:
            if (in->searching)
                in_search_backspace(in);
            else
                in_backspace(in);
            return 0;
        case KEY_PPAGE: scroll_by(u, H > 6 ? H - 6 : 1); return 0;
        case KEY_NPAGE: scroll_by(u, -(H > 6 ? H - 6 : 1)); return 0;
        case KEY_ENTER: return submit(u, ev);
        case KEY_MOUSE: {
            MEVENT me;
            if (getmouse(&me) == OK) {
                if (me.bstate & BUTTON4_PRESSED)
                    scroll_by(u, 3);
                else if (me.bstate & BUTTON5_PRESSED)
                    scroll_by(u, -3);
            }
            return 0;
        }
        default: return 0;
        }
    }
    if (c != 3)
        u->ctrl_c_armed = 0;
    if (u->asking) {
        if (c == 'y' || c == 'n' || c == 'a' || c == 'Y' || c == 'N' || c == 'A') {
            ev->kind = UI_EV_ANSWER;
            ev->answer = c | 0x20;
            return 1;
        }
        if (c == 27 || c == 3) {
            ev->kind = UI_EV_ANSWER;
            ev->answer = 'n';
            return 1;
        }
        if (c == 'd' || c == 'D')
            u->ask_show = !u->ask_show;
        return 0;
    }
    switch (c) {
    case 27: { /* Esc, or Alt+key */
        wint_t c2;
        int r2 = get_wch(&c2);
        if (r2 == OK && (c2 == '\r' || c2 == '\n')) {
            in_insert(in, "\n", 1);
            return 0;
        }
        if (r2 != ERR)
            return 0; /* Alt+key: nothing bound */
        if (in->searching) {
            in_search_cancel(in);
            return 0;
        }
        if (u->st.busy) {
            ev->kind = UI_EV_STOP;
            return 1;
        }
        u->hint[0] = 0;
        return 0;
    }
    case '\r':
        if (in->searching) {
            in_search_accept(in);
            return 0;
        }
        return submit(u, ev);
    case '\n':
        if (!in->searching)
            in_insert(in, "\n", 1);
        return 0;
    case 3: /* Ctrl+C */
        if (in->searching) {
            in_search_cancel(in);
            return 0;
        }
        if (!in_empty(in)) {
            in_clear(in);
            u->ctrl_c_armed = 1;
            ui_hint(u, "Ctrl+C again to quit");
            return 0;
        }
        if (u->ctrl_c_armed) {
            ev->kind = UI_EV_QUIT;
            return 1;
        }
        u->ctrl_c_armed = 1;
        ui_hint(u, "Ctrl+C again to quit");
        if (u->st.busy) {
            ev->kind = UI_EV_STOP;
            return 1;
        }
        return 0;
    case 4: /* Ctrl+D */
        if (in_empty(in)) {
            ev->kind = UI_EV_QUIT;
            return 1;
        }
        in_delete(in);
        return 0;
    case 20: /* Ctrl+T */ ev->kind = UI_EV_THINK; return 1;
    case 18: /* Ctrl+R */
        if (in->searching)
            in_search_again(in);
        else
            in_search_start(in);
        return 0;
    case 15: /* Ctrl+O */ tr_toggle_all(&u->tr, TR_TOOL); return 0;
    case 7: /* Ctrl+G */ tr_toggle_all(&u->tr, TR_REASONING); return 0;
    case 26: /* Ctrl+Z */ suspend(u); return 0;
    case 12: /* Ctrl+L */ clearok(stdscr, TRUE); return 0;
    case 1: in_home(in); return 0;
    case 5: in_end(in); return 0;
    case 2: in_left(in); return 0;
    case 6: in_right(in); return 0;
    case 16: in_up(in); return 0;
    case 14: in_down(in); return 0;
    case 11: in_kill_end(in); return 0;
    case 21: in_kill_start(in); return 0;
    case 23: in_kill_word(in); return 0;
    case 8:
    case 127:
        if (in->searching)
            in_search_backspace(in);
        else
            in_backspace(in);
        return 0;
    case '\t': complete(u); return 0;
    default: break;
    }
    if (c < 32)
        return 0;
    char mb[4];
    int k = utf8_encode((uint32_t)c, mb);
    if (k <= 0)
        return 0;
    if (in->searching)
        in_search_type(in, mb, (size_t)k);
    else
        in_insert(in, mb, (size_t)k);
    return 0;
}

int ui_wait(struct ui *u, int fd, int timeout_ms, struct ui_ev *ev)
{
    memset(ev, 0, sizeof *ev);
    uint64_t start = time_ns();
    for (;;) {
        /* keys first: whatever curses already buffered is not visible to poll */
        wint_t c;
        int r;
        while ((r = get_wch(&c)) != ERR)
            if (key(u, r, c, ev))
                return 0;
        uint64_t now = time_ns();
        int wait = -1;
        if (u->dirty) {
            if (now - u->last_draw >= FRAME_NS) {
                if (u->st.busy)
                    u->spin++;
                ui_draw(u);
            } else {
                wait = (int)((FRAME_NS - (now - u->last_draw)) / 1000000) + 1;
            }
        }
        if (timeout_ms >= 0) {
            long left = timeout_ms - (long)((now - start) / 1000000);
            if (left <= 0)
                return 0;
            if (wait < 0 || left < wait)
                wait = (int)left;
        }
        /* the spinner and a lost paste end need a tick while something runs */
        if ((u->st.busy || u->pasting) && (wait < 0 || wait > 150))
            wait = 150;
        struct pollfd p[2] = { { STDIN_FILENO, POLLIN, 0 }, { fd, POLLIN, 0 } };
        int n = poll(p, fd >= 0 ? 2 : 1, wait);
        if (n < 0 && errno != EINTR)
            return err_errno("ui: poll");
        if (n == 0 && u->pasting && time_ns() - u->paste_ns > 2000000000ull) {
            /* the terminal never sent the paste end: take what came */
            key(u, KEY_CODE_YES, KEY_PASTE_END, ev);
        }
        if (n == 0 && u->st.busy)
            u->dirty = 1; /* spinner */
        if (n > 0 && fd >= 0 && (p[1].revents & (POLLIN | POLLHUP))) {
            ev->kind = UI_EV_FD;
            return 0;
        }
    }
}
