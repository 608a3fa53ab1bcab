/* log.c - leveled diagnostic log (see log.h). */
#include "common/log.h"

#include "common/err.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_lvl = LOG_WARN;
static FILE *log_fp; /* NULL means stderr */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

int log_init(enum log_level level, const char *path)
{
    FILE *fp = NULL;
    if (path && !(fp = fopen(path, "a")))
        return err_errno("cannot open log file %s", path);
    pthread_mutex_lock(&log_mu);
    if (log_fp)
        fclose(log_fp);
    log_fp = fp;
    log_lvl = level;
    pthread_mutex_unlock(&log_mu);
    return 0;
}

void log_close(void)
{
    pthread_mutex_lock(&log_mu);
    if (log_fp)
        fclose(log_fp);
    log_fp = NULL;
    pthread_mutex_unlock(&log_mu);
}

int log_level_parse(const char *s)
{
    static const char *names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *tags[] = { "error", "warn", "info", "debug" };
    if (level > log_lvl)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_mu);
    FILE *fp = log_fp ? log_fp : stderr;
    if (log_fp) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        fprintf(fp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    }
    fprintf(fp, "lode: %s: %s\n", tags[level], line);
    fflush(fp);
    pthread_mutex_unlock(&log_mu);
}
