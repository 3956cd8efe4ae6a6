/*
 * transcript.c - bounded per-session event records.
 */
#include "transcript.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonutil.h"
#include "log.h"

#define TRANSCRIPT_INITIAL 256
#define HEADER             (sizeof(int64_t) + 2 * sizeof(uint16_t))
#define NAME_MAX_LEN       32

typedef struct record_header {
    int64_t ms;
    uint16_t name_len, text_len;
} record_header;

static size_t record_size(const char *p)
{
    record_header h;
    memcpy(&h, p, sizeof(h));
    return HEADER + h.name_len + h.text_len;
}

/*
 * drop_oldest - remove whole records from the front until need more bytes fit, and a quarter of the
 * buffer besides: the memmove is then paid once per few hundred events of a long session, not per event.
 */
static void drop_oldest(transcript *t, size_t need)
{
    size_t cut = 0;
    while (cut < t->buf.len && t->buf.len - cut + need > TRANSCRIPT_MAX - TRANSCRIPT_MAX / 4) {
        cut += record_size(t->buf.data + cut);
        t->dropped++;
    }
    if (cut > 0)
        bytebuf_consume(&t->buf, cut);
}

void transcript_add(transcript *t, int64_t ms, const char *event, const char *text, size_t len)
{
    size_t nlen = strnlen(event, NAME_MAX_LEN);
    if (len > LOG_TEXT_MAX)
        len = LOG_TEXT_MAX;
    size_t need = HEADER + nlen + len;
    if (t->buf.max == 0) /* a zeroed transcript (calloc'd connection) starts here */
        bytebuf_init(&t->buf, TRANSCRIPT_INITIAL, TRANSCRIPT_MAX);
    if (t->buf.len + need > TRANSCRIPT_MAX)
        drop_oldest(t, need);
    if (bytebuf_reserve(&t->buf, need) != 0) {
        t->dropped++;
        return;
    }
    record_header h = {ms, (uint16_t)nlen, (uint16_t)len};
    char *at = t->buf.data + t->buf.len;
    memcpy(at, &h, sizeof(h));
    memcpy(at + HEADER, event, nlen);
    memcpy(at + HEADER + nlen, text, len);
    t->buf.len += need;
}

cJSON *transcript_json(const transcript *t)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL)
        return NULL;
    for (size_t off = 0; off < t->buf.len;) {
        record_header h;
        memcpy(&h, t->buf.data + off, sizeof(h));
        const char *name = t->buf.data + off + HEADER;
        char ev[NAME_MAX_LEN + 1], when[40], text[LOG_TEXT_MAX * 6 + 32];
        memcpy(ev, name, h.name_len);
        ev[h.name_len] = '\0';
        log_sanitize(name + h.name_len, h.text_len, text, sizeof(text));
        format_wall(h.ms, when, sizeof(when));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "time", when);
        cJSON_AddStringToObject(o, "event", ev);
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddItemToArray(arr, o);
        off += HEADER + h.name_len + h.text_len;
    }
    return arr;
}

void transcript_move(transcript *to, transcript *t)
{
    *to = *t;
    memset(t, 0, sizeof(*t));
}

void transcript_free(transcript *t)
{
    bytebuf_release(&t->buf);
    memset(t, 0, sizeof(*t));
}
