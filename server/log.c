/*
 * log.c - text and JSON event logging with sanitised client bytes.
 */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <cJSON.h>

#include "utf8.h"

#define LOG_LINE_MAX 1024

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static struct {
    FILE *out;
    log_format format;
    log_level level;
} logger = {NULL, LOG_FORMAT_TEXT, LOG_INFO};

void log_setup(FILE *out, log_format format, log_level level)
{
    logger.out = out;
    logger.format = format;
    logger.level = level;
}

int log_enabled(log_level level)
{
    return level <= logger.level;
}

static void timestamp(char *buf, size_t size)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

void log_sanitize(const char *in, size_t n, char *out, size_t outsz)
{
    static const char hex[] = "0123456789abcdef";
    size_t shown = n > LOG_TEXT_MAX ? LOG_TEXT_MAX : n;
    size_t o = 0, i = 0;
    /* Reserve room for the escape of one byte and the truncation note. */
    while (i < shown && o + 8 < outsz) {
        unsigned char c = (unsigned char)in[i];
        size_t seq = c >= 0x80 ? utf8_sequence_len((const unsigned char *)in + i, shown - i) : 1;
        /* C1 controls (U+0080-U+009F: CSI, NEL) and U+2028/U+2029 break lines or drive terminals
         * as surely as ASCII controls do: shown as \uXXXX, never raw. */
        unsigned cp = 0;
        if (seq == 2 && c == 0xC2 && (unsigned char)in[i + 1] < 0xA0)
            cp = (unsigned char)in[i + 1];
        else if (seq == 3 && c == 0xE2 && (unsigned char)in[i + 1] == 0x80 &&
                 ((unsigned char)in[i + 2] == 0xA8 || (unsigned char)in[i + 2] == 0xA9))
            cp = 0x2000u + ((unsigned char)in[i + 2] - 0x80u);
        if (cp != 0) {
            o += (size_t)snprintf(out + o, outsz - o, "\\u%04x", cp);
            i += seq;
            continue;
        }
        if (c >= 0x80 && seq > 0) {
            if (o + seq + 8 >= outsz)
                break;
            memcpy(out + o, in + i, seq);
            o += seq;
            i += seq;
            continue;
        }
        if (c < 0x20 || c == 0x7f || c >= 0x80 || c == '\\') {
            if (c == '\\') {
                out[o++] = '\\';
                out[o++] = '\\';
            } else if (c == '\r') {
                out[o++] = '\\';
                out[o++] = 'r';
            } else if (c == '\n') {
                out[o++] = '\\';
                out[o++] = 'n';
            } else if (c == '\t') {
                out[o++] = '\\';
                out[o++] = 't';
            } else {
                out[o++] = '\\';
                out[o++] = 'x';
                out[o++] = hex[c >> 4];
                out[o++] = hex[c & 15];
            }
        } else {
            out[o++] = (char)c;
        }
        i++;
    }
    out[o] = '\0';
    if (i < n)
        snprintf(out + o, outsz - o, "...(+%zu bytes)", n - i);
}

static void emit(log_level level, uint64_t sid, const char *event, const char *text)
{
    FILE *out = logger.out ? logger.out : stderr;
    char ts[40];
    timestamp(ts, sizeof(ts));
    if (logger.format == LOG_FORMAT_JSON) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL)
            return;
        cJSON_AddStringToObject(o, "time", ts);
        cJSON_AddStringToObject(o, "level", level_names[level]);
        if (sid != 0)
            cJSON_AddNumberToObject(o, "session", (double)sid);
        cJSON_AddStringToObject(o, "event", event);
        cJSON_AddStringToObject(o, "text", text);
        char *line = cJSON_PrintUnformatted(o);
        if (line != NULL)
            fprintf(out, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
    } else if (sid != 0) {
        fprintf(out, "%s #%llu %s %s\n", ts, (unsigned long long)sid, event, text);
    } else {
        fprintf(out, "%s %s: %s\n", ts, level_names[level], text);
    }
    fflush(out);
}

void log_server(log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char text[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    emit(level, 0, level_names[level], text);
}

void log_session(log_level level, uint64_t sid, const char *event, const char *text, size_t len)
{
    if (!log_enabled(level))
        return;
    char clean[LOG_LINE_MAX];
    log_sanitize(text, len, clean, sizeof(clean));
    emit(level, sid, event, clean);
}

int log_parse_level(const char *s)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

int log_parse_format(const char *s)
{
    if (strcasecmp(s, "text") == 0)
        return LOG_FORMAT_TEXT;
    if (strcasecmp(s, "json") == 0)
        return LOG_FORMAT_JSON;
    return -1;
}

size_t log_vformat(char *out, size_t outsz, const char *fmt, va_list ap)
{
    int n = vsnprintf(out, outsz, fmt, ap);
    if (n <= 0)
        return 0;
    return (size_t)n < outsz ? (size_t)n : outsz - 1;
}
