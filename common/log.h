/*
 * log.h - leveled diagnostic log. Goes to stderr by default, or to a file
 * (the UI redirects it there so it never draws over the screen).
 * The level comes from log_init() (config key log.level / LODE_LOG_LEVEL).
 */
#ifndef LODE_COMMON_LOG_H
#define LODE_COMMON_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the level and, when path is non-NULL, appends to that file instead of
 * stderr. Returns 0 or ERR_IO. Safe to call again (closes the old file). */
int log_init(enum log_level level, const char *path);
void log_close(void);
/* Parses "error|warn|info|debug"; returns -1 when unknown. */
int log_level_parse(const char *s);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
