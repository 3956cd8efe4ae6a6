/*
 * log.h - the server's log: one line per event on stderr, as readable text or as JSON objects.
 *
 * Session events (connect, each command and reply, close with reason) form the transcript of a session.
 * Client bytes are sanitised (control bytes and invalid UTF-8 escaped) and truncated before they reach the
 * log. The logger is configured once at start-up; it is the only process-wide state the server keeps, like
 * syslog's, so that every module can log without carrying a handle.
 */
#ifndef SMTPFAULT_LOG_H
#define SMTPFAULT_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level;
typedef enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON } log_format;

#define LOG_TEXT_MAX 200 /* client bytes shown per event; the rest is counted, not shown */

/* log_setup - where, how and how much to log (default: stderr, text, info) */
void log_setup(FILE *out, log_format format, log_level level);

/* log_enabled - 1 when events of this level are written */
int log_enabled(log_level level);

/* log_server - a server-wide message (start-up, listeners, shutdown, errors) */
void log_server(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * log_session - one event of session sid's transcript. event is a short fixed word ("connect", "command",
 * "reply", "close", "message", ...); text may hold client bytes, which are sanitised and truncated.
 */
void log_session(log_level level, uint64_t sid, const char *event, const char *text, size_t len);

/* log_sanitize - escape and truncate n bytes of untrusted text into out (always NUL-terminated) */
void log_sanitize(const char *in, size_t n, char *out, size_t outsz);

/* log_parse_level / log_parse_format - from a command-line word; -1 when unknown */
/*
 * log_vformat - fmt and ap into out, as vsnprintf; the length written (cut to outsz - 1), or 0 when
 * nothing was: what an event line holds, for the helpers that format one
 */
size_t log_vformat(char *out, size_t outsz, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

int log_parse_level(const char *s);
int log_parse_format(const char *s);

#endif
