/*
 * log.h - logging in the style of OpenSMTPD/tmux: syslog by default, stderr
 * when in the foreground.  Every line about a VM names it: pass the VM name
 * (or NULL for process-wide lines).
 */
#ifndef HR_LOG_H
#define HR_LOG_H

#include <stdarg.h>

enum hr_log_level { HR_LOG_ERR = 3, HR_LOG_WARN = 4, HR_LOG_INFO = 6, HR_LOG_DEBUG = 7 };

/* to_stderr: 1 = stderr (foreground), 0 = syslog.  verbose raises the level. */
void hr_log_init(const char *ident, int to_stderr, int verbose);
void hr_log(enum hr_log_level lvl, const char *vm, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hr_vlog(enum hr_log_level lvl, const char *vm, const char *fmt, va_list ap);

#define log_warnx(vm, ...) hr_log(HR_LOG_WARN, vm, __VA_ARGS__)
#define log_info(vm, ...)  hr_log(HR_LOG_INFO, vm, __VA_ARGS__)
#define log_debug(vm, ...) hr_log(HR_LOG_DEBUG, vm, __VA_ARGS__)
#define log_err(vm, ...)   hr_log(HR_LOG_ERR, vm, __VA_ARGS__)

#endif
