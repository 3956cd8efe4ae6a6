/*
 * event_line.c - session events as JSON lines for event streams, without a formatter per field.
 */
#include "event_line.h"

#include <string.h>

#include "sf_assert.h"

size_t event_u64(char *out, uint64_t v)
{
    char rev[EVENT_U64_DIGITS];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    return n;
}

/* put - len bytes of s at out + n; the new length */
static size_t put(char *out, size_t n, const char *s, size_t len)
{
    memcpy(out + n, s, len);
    return n + len;
}

/*
 * put_time - now as "2026-12-06T14:04:40.606Z" (24 bytes); the date and time of day are formatted once a
 * second (the server is one thread), the milliseconds each time
 */
static size_t put_time(char *out, size_t n, const struct timespec *now)
{
    static time_t last_sec = -1;
    static char prefix[24];
    static size_t prefix_len;
    if (now->tv_sec != last_sec) {
        struct tm tm;
        gmtime_r(&now->tv_sec, &tm);
        prefix_len = strftime(prefix, sizeof(prefix), "%Y-%m-%dT%H:%M:%S.", &tm);
        last_sec = now->tv_sec;
    }
    n = put(out, n, prefix, prefix_len);
    int ms = (int)(now->tv_nsec / 1000000);
    out[n++] = (char)('0' + ms / 100);
    out[n++] = (char)('0' + ms / 10 % 10);
    out[n++] = (char)('0' + ms % 10);
    out[n++] = 'Z';
    return n;
}

/*
 * put_plain - text, escaped for JSON, when log_sanitize shows it as it is (printable ASCII without '\', not
 * cut): most texts are commands and replies, copied in one pass without a sanitised copy. The new length, or
 * 0 when text is not plain.
 */
static size_t put_plain(char *out, size_t n, const char *text, size_t len)
{
    if (len > LOG_TEXT_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c > 0x7e || c == '\\')
            return 0;
        if (c == '"')
            out[n++] = '\\';
        out[n++] = (char)c;
    }
    return n;
}

/* put_escaped - s[0..len) with '"' and '\' escaped for a JSON string (s holds no control bytes) */
static size_t put_escaped(char *out, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            out[n++] = '\\';
        out[n++] = s[i];
    }
    return n;
}

size_t event_line(char *out, const char *scope_id, uint64_t sid, const char *event, const char *text,
                  size_t len, const struct timespec *now)
{
    size_t event_len = strlen(event);
    SF_ASSERT(event_len < EVENT_NAME_MAX);
    size_t n = put(out, 0, "{\"event\":\"", 10);
    n = put(out, n, event, event_len);
    if (sid != 0) {
        n = put(out, n, "\",\"session\":", 12);
        n += event_u64(out + n, sid);
        n = put(out, n, ",\"time\":\"", 9);
    } else {
        n = put(out, n, "\",\"time\":\"", 10);
    }
    n = put_time(out, n, now);
    n = put(out, n, "\",\"text\":\"", 10);
    size_t plain = put_plain(out, n, text, len);
    if (plain != 0) {
        n = plain;
    } else {
        char clean[EVENT_TEXT_CLEAN_MAX];
        log_sanitize(text, len, clean, sizeof(clean));
        n = put_escaped(out, n, clean, strlen(clean));
    }
    size_t scope_len = strlen(scope_id);
    SF_ASSERT(scope_len < EVENT_SCOPE_ID_MAX);
    if (scope_len > 0) {
        n = put(out, n, "\",\"scope\":\"", 11);
        n = put(out, n, scope_id, scope_len);
    }
    n = put(out, n, "\"}", 2);
    SF_ASSERT(n < EVENT_LINE_MAX);
    return n;
}
