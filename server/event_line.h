/*
 * event_line.h - one session event as event streams carry it (events.subscribe, GET /api/v1/events):
 * {"event":...,"session":N,"time":"2026-12-06T14:04:40.606Z","text":...,"scope":...}.
 *
 * Written by hand rather than through cJSON or snprintf: a stream gets a dozen lines per SMTP session, and at
 * thousands of sessions a second formatting them cost more than the SMTP they describe
 * (docs/performance.md, "Event streams"). The text is the log's sanitised form (log_sanitize), JSON-escaped.
 */
#ifndef SMTPFAULT_EVENT_LINE_H
#define SMTPFAULT_EVENT_LINE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "log.h"

#define EVENT_SCOPE_ID_MAX   24                      /* a scope id's bytes, its NUL included */
#define EVENT_TEXT_CLEAN_MAX (LOG_TEXT_MAX * 6 + 32) /* log_sanitize's output at most, NUL included */
#define EVENT_NAME_MAX       32                      /* an event word's bytes ("connect", "reply"...) */
#define EVENT_LINE_MAX       (2 * EVENT_TEXT_CLEAN_MAX + 256) /* a line at most: every text byte escaped */
#define EVENT_U64_DIGITS     20                               /* decimal digits of UINT64_MAX */

/*
 * event_line - the line (without a newline) for session sid's event (sid 0: none) with len bytes of text,
 * at now, in scope scope_id ("" for the server's own) into out (EVENT_LINE_MAX bytes); its length
 */
size_t event_line(char *out, const char *scope_id, uint64_t sid, const char *event, const char *text,
                  size_t len, const struct timespec *now);

/* event_u64 - v in decimal into out (EVENT_U64_DIGITS bytes at least, no NUL); the digits written */
size_t event_u64(char *out, uint64_t v);

#endif
