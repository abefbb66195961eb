/*
 * log.h - logging in the style of OpenSMTPD/tmux: syslog by default, stderr
 * when in the foreground or when no syslog daemon runs.  Every line about a VM names it: pass the
 * VM name (or NULL for process-wide lines).
 */
#ifndef HR_LOG_H
#define HR_LOG_H

#include <stdarg.h>

enum hr_log_level { HR_LOG_ERR = 3, HR_LOG_WARN = 4, HR_LOG_INFO = 6, HR_LOG_DEBUG = 7 };

/*
 * to_stderr: 1 = stderr (foreground), 0 = syslog (facility daemon) if a
 * syslog daemon answers on /dev/log, else stderr all the same: lines never
 * go nowhere.  verbose raises the level.  Returns 1 when lines go to
 * syslog, 0 when to stderr.
 */
int hr_log_init(const char *ident, int to_stderr, int verbose);
/* Does a syslog daemon answer on /dev/log (a connect there succeeds)? */
int hr_log_syslog_available(void);
void hr_log(enum hr_log_level lvl, const char *vm, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hr_vlog(enum hr_log_level lvl, const char *vm, const char *fmt, va_list ap);

#define log_warnx(vm, ...) hr_log(HR_LOG_WARN, vm, __VA_ARGS__)
#define log_info(vm, ...)  hr_log(HR_LOG_INFO, vm, __VA_ARGS__)
#define log_debug(vm, ...) hr_log(HR_LOG_DEBUG, vm, __VA_ARGS__)
#define log_err(vm, ...)   hr_log(HR_LOG_ERR, vm, __VA_ARGS__)

#endif
