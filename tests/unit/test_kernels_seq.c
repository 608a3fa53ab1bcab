/* test_kernels_seq.c - kernels/cpu sequence kernels: attention over F32/BF16/FP8 caches (decode
 * and the prefill tiles), the conv1d, the recurrent and chunked delta rule and their SIMD blocks
 * (gdn_simd.h: the tiled GEMM, triangular inverse, column softmax), and the MoE expert path;
 * every SIMD ISA against the scalar reference on random data, and bitwise identity across thread
 * counts. */
#include "kernels/cpu/gdn_simd.h"
#include "kernels/kernels.h"

#include "common/err.h"
#include "testhelp.h"

#include <math.h>

static struct th_rng rng;

static float *fbuf(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

static void fill(float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * 0.5f * (th_uniform(&rng) + 1.0f);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* contexts: [0] scalar, then every supported SIMD ISA with 1, 2 and 3 threads */
static struct kern_cpu *ctx[8];
static int nctx;

static void open_ctx(void)
{
    kern_cpu_new(&ctx[nctx++], 1, KERN_ISA_SCALAR);
    for (int isa = KERN_ISA_AVX2; isa <= KERN_ISA_AVX512; isa++)
        for (int th = 1; th <= 3 && kern_isa_supported(isa); th++)
            if (kern_cpu_new(&ctx[nctx], th, isa) == 0)
                nctx++;
}

/* ---------------------------------------------------------------- attention */

static void attn_case(int kv_type, int n_q, int n_kv, int hd, long pos0, long T)
{
    long np = pos0 + T, cap = np + 3; /* positions past np hold NaN: causality is checked */
    size_t es = kv_type == KERN_F32 ? 4 : kv_type == KERN_BF16 ? 2 : 1;
    size_t row = (size_t)n_kv * hd;
    float *kf = fbuf(cap * row), *vf = fbuf(cap * row);
    fill(kf, np * row, -2, 2);
    fill(vf, np * row, -1, 1);
    float ks = kv_type == KERN_FP8 ? 0.01f : 1.0f, vs = kv_type == KERN_FP8 ? 0.005f : 1.0f;
    void *kc = malloc(cap * row * es), *vc = malloc(cap * row * es);
    CHECK(kern_convert(kc, kv_type, kf, KERN_F32, cap * row, ks) == 0);
    CHECK(kern_convert(vc, kv_type, vf, KERN_F32, cap * row, vs) == 0);
    long q_head = 2 * hd, q_tok = n_q * q_head; /* the gated layout: query and gate per head */
    float *q = fbuf(T * q_tok);
    fill(q, T * q_tok, -1, 1);
    float *ref = fbuf(T * n_q * hd), *y = fbuf(T * n_q * hd), *y1 = fbuf(T * n_q * hd);
    struct kern_attn a = { n_q,    n_kv,    hd, T,  pos0, q,  q_tok,
                           q_head, kv_type, kc, vc, ks,   vs, 1.0f / sqrtf((float)hd),
                           ref };
    CHECK(kern_attention(ctx[0], &a) == 0);
    int finite = 1;
    for (long i = 0; i < T * n_q * hd; i++)
        finite &= isfinite(ref[i]);
    CHECKF(finite, "reference output not finite (reads past the causal bound?)");
    for (int c = 1; c < nctx; c++) {
        for (long i = 0; i < T * n_q * hd; i++)
            y[i] = NAN;
        a.out = y;
        CHECK(kern_attention(ctx[c], &a) == 0);
        double e = max_abs_diff(y, ref, T * n_q * hd);
        CHECKF(e < 3e-6 * (kv_type == KERN_FP8 ? 448 * vs : 1) + 1e-6,
               "%s %d threads, kv %s, hd %d pos0 %ld T %ld: max error %g",
               kern_isa_name(kern_cpu_isa(ctx[c])), kern_cpu_threads(ctx[c]),
               kern_dtype_name(kv_type), hd, pos0, T, e);
        if (kern_cpu_threads(ctx[c]) == 1)
            memcpy(y1, y, T * n_q * hd * sizeof(float));
        else
            CHECKF(!memcmp(y, y1, T * n_q * hd * sizeof(float)), "threads change the result");
    }
    free(kf), free(vf), free(kc), free(vc), free(q), free(ref), free(y), free(y1);
}

static void t_attention(void)
{
    int types[] = { KERN_F32, KERN_BF16, KERN_FP8 };
    for (int ti = 0; ti < 3; ti++) {
        attn_case(types[ti], 16, 2, 256, 0, 1);
        attn_case(types[ti], 16, 2, 256, 130, 1);
        attn_case(types[ti], 4, 2, 256, 5, 17);
        attn_case(types[ti], 4, 1, 20, 63, 3);
        attn_case(types[ti], 2, 2, 7, 0, 9);
        attn_case(types[ti], 3, 1, 7, 600, 3);     /* odd head_dim, two position chunks */
        attn_case(types[ti], 16, 2, 256, 1100, 1); /* decode over three chunks of 512 */
        /* prefill tiles: 64 query rows = tokens x heads of a kv head, 64 positions; odd T, tiles
         * cut by the causal bound, partial last tiles, G from 1 to 16, odd head_dim */
        attn_case(types[ti], 16, 2, 256, 100, 70);
        attn_case(types[ti], 8, 2, 128, 0, 67);
        attn_case(types[ti], 3, 1, 7, 61, 23);  /* G 3: 21 tokens, 63 rows per tile */
        attn_case(types[ti], 2, 2, 20, 0, 130); /* G 1: 64 tokens per tile */
        attn_case(types[ti], 16, 1, 33, 5, 9);  /* G 16: 4 tokens per tile */
        attn_case(types[ti], 64, 1, 16, 3, 5);  /* G 64: one token per tile */
    }
}

/* the reference itself on a hand case: one position is a copy of V; two equal scores average */
static void t_attention_semantics(void)
{
    float k[2][4] = { { 1, 0, 0, 0 }, { 1, 0, 0, 0 } },
          v[2][4] = { { 1, 2, 3, 4 }, { 3, 2, 1, 0 } };
    float q[4] = { 5, 0, 0, 0 }, o[4];
    struct kern_attn a = { 1, 1, 4, 1, 0, q, 4, 4, KERN_F32, k, v, 1, 1, 0.5f, o };
    CHECK(kern_attention(ctx[0], &a) == 0);
    CHECK(o[0] == 1 && o[3] == 4);
    a.pos0 = 1;
    CHECK(kern_attention(ctx[0], &a) == 0);
    CHECK(fabsf(o[0] - 2) < 1e-6f && fabsf(o[3] - 2) < 1e-6f);
    a.n_kv = 3;
    CHECK(kern_attention(ctx[0], &a) == ERR_INVAL);
}

/* ---------------------------------------------------------------- conv1d */

static void t_conv1d(void)
{
    long T = 11, C = 37;
    int kw = 4;
    float *x = fbuf(T * C), *w = fbuf(C * kw), *st = fbuf(C * 3), *y = fbuf(T * C);
    fill(x, T * C, -1, 1);
    fill(w, C * kw, -1, 1);
    memset(st, 0, C * 3 * sizeof(float));
    CHECK(kern_conv1d_silu(y, x, C, st, w, T, C, kw) == 0);
    double e = 0;
    for (long t = 0; t < T; t++)
        for (long c = 0; c < C; c++) {
            double s = 0;
            for (int j = 0; j < kw; j++) {
                long tt = t - (kw - 1) + j;
                if (tt >= 0)
                    s += (double)w[c * kw + j] * x[tt * C + c];
            }
            double want = s / (1 + exp(-s));
            e = fmax(e, fabs(want - y[t * C + c]));
        }
    CHECKF(e < 1e-6, "conv vs the formula: %g", e);
    /* decoding token by token from the carried state gives the same */
    float *st2 = fbuf(C * 3), *y2 = fbuf(T * C);
    memset(st2, 0, C * 3 * sizeof(float));
    CHECK(kern_conv1d_silu(y2, x, C, st2, w, 5, C, kw) == 0);
    for (long t = 5; t < T; t++)
        CHECK(kern_conv1d_silu(y2 + t * C, x + t * C, C, st2, w, 1, C, kw) == 0);
    CHECK(!memcmp(y, y2, T * C * sizeof(float)));
    CHECK(!memcmp(st, st2, C * 3 * sizeof(float)));
    CHECK(st[0] == x[8 * C] && st[2] == x[10 * C]);
    free(x), free(w), free(st), free(y), free(st2), free(y2);
}

/* ---------------------------------------------------------------- delta rule */

struct gdn_data {
    struct kern_gdn a;
    float *qk, *v, *g, *beta, *state0;
};

static void gdn_make(struct gdn_data *d, int n_k, int n_v, int dk, int dv, long T)
{
    long ld_qk = 2L * n_k * dk + 3; /* q and k share a row, like the conv output */
    d->qk = fbuf(T * ld_qk);
    fill(d->qk, T * ld_qk, -1, 1);
    d->v = fbuf(T * n_v * dv);
    fill(d->v, T * n_v * dv, -1, 1);
    d->g = fbuf(T * n_v);
    d->beta = fbuf(T * n_v);
    for (long i = 0; i < T * n_v; i++) {
        d->g[i] = -kern_softplus1(2 * th_uniform(&rng)) * 0.5f;
        d->beta[i] = kern_sigmoid1(2 * th_uniform(&rng));
    }
    d->state0 = fbuf((size_t)n_v * dk * dv);
    fill(d->state0, (size_t)n_v * dk * dv, -0.1f, 0.1f);
    d->a = (struct kern_gdn){
        n_k,  n_v,     dk,   dv,  T, d->qk, d->qk + n_k * dk, d->v, ld_qk, (long)n_v * dv,
        d->g, d->beta, NULL, NULL
    };
}

static void gdn_free(struct gdn_data *d)
{
    free(d->qk), free(d->v), free(d->g), free(d->beta), free(d->state0);
}

/* runs one form on a fresh copy of the initial state; out and state returned (caller frees) */
static void gdn_do(struct kern_cpu *c, struct gdn_data *d, int chunk, float **out, float **state)
{
    size_t ns = (size_t)d->a.n_v * d->a.dk * d->a.dv;
    *state = fbuf(ns);
    memcpy(*state, d->state0, ns * sizeof(float));
    *out = fbuf(d->a.T * d->a.n_v * d->a.dv);
    struct kern_gdn a = d->a;
    a.state = *state;
    a.out = *out;
    CHECK((chunk ? kern_gdn_chunked(c, &a, chunk) : kern_gdn_recurrent(c, &a)) == 0);
}

static void t_gdn(void)
{
    struct {
        int n_k, n_v, dk, dv;
        long T;
        int chunk;
        float gmul; /* log decay scale: 1 normal, 40 so strong a chunk spans more than e^-80 */
    } cases[] = { { 1, 2, 16, 16, 1, 64, 1 },    { 2, 4, 32, 16, 70, 64, 1 },
                  { 2, 4, 128, 128, 65, 64, 1 }, { 1, 1, 24, 40, 33, 16, 1 },
                  { 2, 2, 8, 8, 130, 64, 1 },    { 1, 2, 128, 128, 20, 7, 1 },
                  { 1, 4, 72, 130, 77, 32, 1 },  { 2, 8, 16, 20, 3, 64, 1 },
                  { 1, 3, 33, 17, 129, 64, 40 }, { 2, 2, 128, 64, 67, 1, 1 },
                  { 1, 1, 5, 3, 64, 64, 1 },     { 4, 4, 64, 80, 1, 16, 1 },
                  { 1, 2, 48, 128, 100, 64, 40 } };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        struct gdn_data d;
        gdn_make(&d, cases[ci].n_k, cases[ci].n_v, cases[ci].dk, cases[ci].dv, cases[ci].T);
        for (long i = 0; i < d.a.T * d.a.n_v; i++)
            d.g[i] *= cases[ci].gmul;
        size_t no = d.a.T * d.a.n_v * d.a.dv, ns = (size_t)d.a.n_v * d.a.dk * d.a.dv;
        float *ro, *rs;
        gdn_do(ctx[0], &d, 0, &ro, &rs);
        float *o1[2] = { NULL, NULL }, *s1[2] = { NULL, NULL }; /* 1 thread, per form */
        for (int c = 0; c < nctx; c++) {
            for (int form = 0; form < 2; form++) {
                if (c == 0 && form == 0)
                    continue;
                float *o, *s;
                gdn_do(ctx[c], &d, form ? cases[ci].chunk : 0, &o, &s);
                double eo = max_abs_diff(o, ro, no), es = max_abs_diff(s, rs, ns);
                /* measured: <= 3e-7 for both forms on these shapes */
                double tol = form ? 1e-5 : 2e-6;
                CHECKF(eo < tol && es < tol,
                       "%s %d thr, %s, dk %d dv %d T %ld chunk %d: out error %g, state error %g",
                       kern_isa_name(kern_cpu_isa(ctx[c])), kern_cpu_threads(ctx[c]),
                       form ? "chunked" : "recurrent", d.a.dk, d.a.dv, d.a.T, cases[ci].chunk, eo,
                       es);
                if (c > 0 && kern_cpu_threads(ctx[c]) == 1) {
                    free(o1[form]), free(s1[form]);
                    o1[form] = o, s1[form] = s;
                    continue;
                }
                if (c > 0 && o1[form])
                    CHECKF(!memcmp(o, o1[form], no * 4) && !memcmp(s, s1[form], ns * 4),
                           "threads change the %s result", form ? "chunked" : "recurrent");
                free(o), free(s);
            }
        }
        for (int f = 0; f < 2; f++)
            free(o1[f]), free(s1[f]);
        free(ro), free(rs);
        gdn_free(&d);
    }
}

/* chunked prefill then recurrent decode equals recurrent all along (the state hand-over) */
static void t_gdn_handover(void)
{
    struct kern_cpu *c = ctx[nctx - 1];
    struct gdn_data d;
    gdn_make(&d, 2, 4, 32, 32, 50);
    float *ro, *rs;
    gdn_do(ctx[0], &d, 0, &ro, &rs);
    size_t ns = (size_t)4 * 32 * 32;
    float *st = fbuf(ns), *o = fbuf(50 * 4 * 32);
    memcpy(st, d.state0, ns * 4);
    struct kern_gdn a = d.a;
    a.state = st;
    a.out = o;
    a.T = 41;
    CHECK(kern_gdn_chunked(c, &a, 64) == 0);
    a.T = 1;
    for (long t = 41; t < 50; t++) {
        a.q = d.a.q + t * a.ld_qk, a.k = d.a.k + t * a.ld_qk, a.v = d.v + t * a.ld_v;
        a.g = d.g + t * 4, a.beta = d.beta + t * 4, a.out = o + t * 4 * 32;
        CHECK(kern_gdn_recurrent(c, &a) == 0);
    }
    double e = fmax(max_abs_diff(o, ro, 50 * 4 * 32), max_abs_diff(st, rs, ns));
    CHECKF(e < 1e-4, "prefill chunked + decode recurrent vs recurrent: %g", e);
    /* the delta rule itself with dk = dv = 1 from a zero state: o = beta v (k, q normalise to 1) */
    float qk[2] = { 3, 2 }, v1 = 0.7f, g0 = -0.3f, b0 = 0.25f, s0 = 0, o0;
    struct kern_gdn one = { 1, 1, 1, 1, 1, qk, qk + 1, &v1, 2, 1, &g0, &b0, &s0, &o0 };
    CHECK(kern_gdn_recurrent(ctx[0], &one) == 0);
    CHECK(fabsf(o0 - 0.25f * 0.7f) < 1e-6f);
    free(st), free(o), free(ro), free(rs);
    gdn_free(&d);
}

/* ---------------------------------------------------------------- the SIMD blocks */

static long rnd_in(long lo, long hi)
{
    return lo + (long)(th_next(&rng) % (uint64_t)(hi - lo + 1));
}

/* one gemm call against a double reference; c is poisoned (NaN where beta 0 must not read it)
 * and guarded (columns n .. ldc-1 and the row after m must stay untouched) */
static void gemm_case(const struct gdn_ops *op, const char *isa, long m, long n, long k, float beta,
                      int tri)
{
    int at = tri & GDN_A_T, mode = tri & ~GDN_A_T;
    long lda = (at ? m : k) + rnd_in(0, 5), ldb = n + rnd_in(0, 5), ldc = n + rnd_in(1, 5);
    float *a = fbuf((at ? k : m) * lda), *b = fbuf(k * ldb), *c = fbuf((m + 1) * ldc);
    fill(a, (at ? k : m) * lda, -1, 1);
    fill(b, k * ldb, -1, 1);
    double *want = calloc((size_t)(m * n), sizeof(double));
    for (long i = 0; i < m; i++)
        for (long p = 0; p < k; p++)
            if (mode == GDN_TRI_K && p > i)
                a[at ? p * lda + i : i * lda + p] = 0; /* the promised zeros */
    for (long i = 0; i < (m + 1) * ldc; i++)
        c[i] = beta == 0 ? NAN : th_uniform(&rng);
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            double s = beta == 0 ? 0 : (double)beta * c[i * ldc + j];
            for (long p = 0; p < k; p++)
                s += (double)(at ? a[p * lda + i] : a[i * lda + p]) * b[p * ldb + j];
            want[i * n + j] = s;
        }
    float *c0 = fbuf((m + 1) * ldc);
    memcpy(c0, c, (m + 1) * ldc * sizeof(float));
    op->gemm(c, ldc, a, lda, b, ldb, m, n, k, beta, tri);
    double err = 0;
    int guard = 1;
    for (long i = 0; i <= m; i++)
        for (long j = 0; j < ldc; j++) {
            float got = c[i * ldc + j], was = c0[i * ldc + j];
            if (i == m || j >= n) {
                guard &= !memcmp(&got, &was, sizeof got);
                continue;
            }
            if (mode == GDN_TRI_N && j > i)
                continue;
            double e = fabs(got - want[i * n + j]);
            err = e <= err ? err : isnan(e) ? INFINITY : e;
        }
    CHECKF(err < 1e-5 * (double)(k + 1), "%s gemm m %ld n %ld k %ld beta %g tri %d: error %g", isa,
           m, n, k, beta, tri, err);
    CHECKF(guard, "%s gemm m %ld n %ld k %ld tri %d wrote outside its result", isa, m, n, k, tri);
    free(a), free(b), free(c), free(c0), free(want);
}

static void t_simd_blocks(void)
{
    for (int isa = KERN_ISA_AVX2; isa <= KERN_ISA_AVX512; isa++) {
        if (!kern_isa_supported(isa))
            continue;
        const struct gdn_ops *op = isa == KERN_ISA_AVX512 ? &gdn_ops_avx512 : &gdn_ops_avx2;
        const char *name = kern_isa_name(isa);
        /* the shapes the kernels use, then random ones (tails of every tile dimension) */
        gemm_case(op, name, 128, 128, 128, 0, GDN_TRI_NONE);
        gemm_case(op, name, 64, 64, 128, 0, GDN_TRI_N);
        gemm_case(op, name, 64, 128, 64, 0, GDN_TRI_K);
        gemm_case(op, name, 64, 256, 64, 1, GDN_TRI_NONE | GDN_A_T);
        gemm_case(op, name, 128, 128, 64, 0.5f, GDN_TRI_NONE);
        for (int r = 0; r < 40; r++) {
            long m = rnd_in(1, 70), n = rnd_in(1, 140), k = rnd_in(1, 70);
            float beta = r % 3 == 0 ? 0 : r % 3 == 1 ? 1 : 0.75f;
            int tri = (int)rnd_in(0, 2), at = r % 4 == 3 ? GDN_A_T : 0;
            if (tri == GDN_TRI_N)
                n = m;
            if (tri == GDN_TRI_K)
                k = m;
            gemm_case(op, name, m, n, k, beta, tri | at);
        }
        /* (I + L) T = I, zeros above the diagonal */
        int ns[] = { 1, 5, 16, 17, 33, 63, 64 };
        for (int q = 0; q < 7; q++) {
            int n = ns[q];
            long ld = n + rnd_in(0, 3);
            float *l = fbuf(n * ld), *t = fbuf(n * ld);
            fill(l, n * ld, -0.3f, 0.3f);
            op->tri_inv(t, l, n, ld);
            double err = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    double s = t[i * ld + j];
                    for (int p = 0; p < i; p++)
                        s += (double)l[i * ld + p] * t[p * ld + j];
                    double e = fabs(s - (i == j)) + (j > i ? fabs(t[i * ld + j]) : 0);
                    err = e <= err ? err : isnan(e) ? INFINITY : e;
                }
            CHECKF(err < 1e-4, "%s tri_inv n %d: error %g", name, n, err);
            free(l), free(t);
        }
        /* the column softmax block against the formula, with masked (-inf) scores */
        long nb = rnd_in(1, 64), nr = rnd_in(1, 70), ld = nr + rnd_in(0, 3);
        float *s = fbuf(nb * ld), *s0 = fbuf(nb * ld), *m = fbuf(nr), *l = fbuf(nr),
              *corr = fbuf(nr);
        fill(s, nb * ld, -8, 8);
        for (long i = 0; i < nb * ld; i++)
            if (th_next(&rng) % 5 == 0 && i >= ld) /* row 0 stays finite */
                s[i] = -INFINITY;
        for (long r = 0; r < nr; r++) {
            m[r] = r % 3 == 0 ? -INFINITY : 4 * th_uniform(&rng);
            l[r] = m[r] == -INFINITY ? 0 : 2;
        }
        memcpy(s0, s, nb * ld * sizeof(float));
        float *m0 = fbuf(nr), *l0 = fbuf(nr);
        memcpy(m0, m, nr * 4), memcpy(l0, l, nr * 4);
        op->softmax_cols(s, ld, nb, nr, m, l, corr);
        double err = 0;
        for (long r = 0; r < nr; r++) {
            double mx = m0[r];
            for (long c = 0; c < nb; c++)
                mx = fmax(mx, s0[c * ld + r]);
            double sum = 0, e = fabs(m[r] - mx) + fabs(corr[r] - exp(m0[r] - mx));
            for (long c = 0; c < nb; c++) {
                double w = exp(s0[c * ld + r] - mx);
                sum += w;
                e += fabs(s[c * ld + r] - w);
            }
            e += fabs(l[r] - (l0[r] * exp(m0[r] - mx) + sum)) / (1 + sum);
            err = e <= err ? err : isnan(e) ? INFINITY : e;
        }
        CHECKF(err < 1e-5, "%s softmax_cols nb %ld nr %ld: error %g", name, nb, nr, err);
        free(s), free(s0), free(m), free(l), free(corr), free(m0), free(l0);
        /* L2 normalisation */
        long n = rnd_in(1, 300);
        float *x = fbuf(n), *y = fbuf(n + 1);
        fill(x, n, -3, 3);
        y[n] = 7;
        op->norm(y, x, n, 0.5f);
        double ss = 0;
        for (long i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        err = 0;
        for (long i = 0; i < n; i++)
            err = fmax(err, fabs(y[i] - 0.5 * x[i] / sqrt(ss + 1e-6)));
        CHECKF(err < 1e-6 && y[n] == 7, "%s norm n %ld: error %g", name, n, err);
        free(x), free(y);
    }
}

/* ---------------------------------------------------------------- MoE */

static struct kern_weight rand_weight(int type, long n, long k, void **mem)
{
    struct kern_weight w = { .type = type, .n = n, .k = k, .scale_type = KERN_BF16, .group = 32 };
    if (type == KERN_BF16) {
        uint16_t *p = malloc(n * k * 2);
        for (long i = 0; i < n * k; i++)
            p[i] = kern_f32_to_bf16(0.2f * th_uniform(&rng));
        w.data = p;
        *mem = p;
    } else {
        size_t nd = type == KERN_I4 ? n * k / 2 : n * k;
        uint8_t *p = malloc(nd + n * (k / 32) * 2);
        for (size_t i = 0; i < nd; i++)
            p[i] = (uint8_t)th_next(&rng);
        uint16_t *s = (uint16_t *)(p + nd);
        for (long i = 0; i < n * (k / 32); i++)
            s[i] = kern_f32_to_bf16(0.01f + 0.02f * (th_uniform(&rng) + 1));
        w.data = p;
        w.scale = s;
        *mem = p;
    }
    return w;
}

static void t_moe(void)
{
    enum { E = 6, K = 3, H = 64, I = 32, TMAX = 9 };
    struct kern_expert ex[E], shared;
    void *mem[3 * E + 3];
    for (int e = 0; e < E; e++) {
        int type = e % 3 == 0 ? KERN_I4 : e % 3 == 1 ? KERN_I8 : KERN_BF16;
        ex[e].gate = rand_weight(type, I, H, &mem[3 * e]);
        ex[e].up = rand_weight(type, I, H, &mem[3 * e + 1]);
        ex[e].down = rand_weight(type, H, I, &mem[3 * e + 2]);
    }
    shared.gate = rand_weight(KERN_BF16, I, H, &mem[3 * E]);
    shared.up = rand_weight(KERN_BF16, I, H, &mem[3 * E + 1]);
    shared.down = rand_weight(KERN_BF16, H, I, &mem[3 * E + 2]);
    float x[TMAX * H], logits[TMAX * E], sg[TMAX], wt[TMAX * K];
    int idx[TMAX * K];
    fill(x, TMAX * H, -1, 1);
    fill(logits, TMAX * E, -2, 2);
    fill(sg, TMAX, -3, 3);
    for (int t = 0; t < TMAX; t++)
        CHECK(kern_moe_route(logits + t * E, E, K, idx + t * K, wt + t * K) == 0);
    /* an independent orchestration on the scalar matmul: per token, per selection */
    float ref[TMAX * H], gbuf[I], ubuf[I], dbuf[H], sref[H];
    for (int t = 0; t < TMAX; t++) {
        double acc[H] = { 0 };
        int sorted[K];
        memcpy(sorted, idx + t * K, sizeof sorted);
        for (int j = 0; j < K; j++) {
            const struct kern_expert *e = &ex[idx[t * K + j]];
            kern_matmul(ctx[0], &e->gate, x + t * H, 1, gbuf);
            kern_matmul(ctx[0], &e->up, x + t * H, 1, ubuf);
            kern_swiglu(gbuf, gbuf, ubuf, I);
            kern_matmul(ctx[0], &e->down, gbuf, 1, dbuf);
            for (int h = 0; h < H; h++)
                acc[h] += (double)wt[t * K + j] * dbuf[h];
        }
        kern_matmul(ctx[0], &shared.gate, x + t * H, 1, gbuf);
        kern_matmul(ctx[0], &shared.up, x + t * H, 1, ubuf);
        kern_swiglu(gbuf, gbuf, ubuf, I);
        kern_matmul(ctx[0], &shared.down, gbuf, 1, sref);
        for (int h = 0; h < H; h++)
            ref[t * H + h] = (float)(acc[h] + kern_sigmoid1(sg[t]) * sref[h]);
    }
    long Ts[] = { 1, 2, 5, 9 };
    for (int ti = 0; ti < 4; ti++) {
        long T = Ts[ti];
        float *y1 = fbuf(T * H);
        for (int c = 0; c < nctx; c++) {
            float *y = fbuf(T * H);
            struct kern_moe m = { E, K, T, H, I, ex, idx, wt, &shared, sg, x, y };
            CHECK(kern_moe(ctx[c], &m) == 0);
            double e = max_abs_diff(y, ref, T * H), mag = 0;
            for (long i = 0; i < T * H; i++)
                mag = fmax(mag, fabs(ref[i]));
            CHECKF(e < 2e-6 * mag, "%s %d threads T %ld: max error %g (max |y| %g)",
                   kern_isa_name(kern_cpu_isa(ctx[c])), kern_cpu_threads(ctx[c]), T, e, mag);
            if (c > 0 && kern_cpu_threads(ctx[c]) == 1)
                memcpy(y1, y, T * H * 4);
            else if (c > 0)
                CHECKF(!memcmp(y, y1, T * H * 4), "threads change the MoE result");
            free(y);
        }
        free(y1);
    }
    int bad_idx[K] = { 0, 1, E };
    float out[H];
    struct kern_moe m = { E, K, 1, H, I, ex, bad_idx, wt, NULL, NULL, x, out };
    CHECK(kern_moe(ctx[0], &m) == ERR_INVAL);
    for (int i = 0; i < 3 * E + 3; i++)
        free(mem[i]);
}

int main(void)
{
    rng.s = th_seed();
    open_ctx();
    TEST_RUN(t_attention_semantics);
    TEST_RUN(t_attention);
    TEST_RUN(t_conv1d);
    TEST_RUN(t_simd_blocks);
    TEST_RUN(t_gdn);
    TEST_RUN(t_gdn_handover);
    TEST_RUN(t_moe);
    for (int i = 0; i < nctx; i++)
        kern_cpu_free(ctx[i]);
    TEST_END();
}
