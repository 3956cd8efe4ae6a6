/*
 * findings.c - the findings vocabulary, a session's findings (one record per id) and the scanners that
 * spot bare line endings and 8-bit bytes.
 */
#include "findings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "log.h"

static const struct {
    const char *name;
    finding_severity severity;
    const char *reference;
} defs[FINDING_COUNT] = {
#define FINDING_DEF(e, id, sev, ref) {id, sev, ref},
    FINDING_LIST(FINDING_DEF)
#undef FINDING_DEF
};

static const char *const severity_names[] = {"violation", "risk", "info"};

const char *finding_name(finding_id id)
{
    return id < FINDING_COUNT ? defs[id].name : "?";
}

finding_severity finding_severity_of(finding_id id)
{
    return id < FINDING_COUNT ? defs[id].severity : FINDING_INFO;
}

const char *finding_severity_name(finding_severity sev)
{
    return severity_names[sev];
}

const char *finding_reference(finding_id id)
{
    return id < FINDING_COUNT ? defs[id].reference : "";
}

size_t finding_describe(finding_id id, char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "%s (%s): %s", finding_name(id),
                     finding_severity_name(finding_severity_of(id)), finding_reference(id));
    return n < 0 ? 0 : (size_t)n < outsz ? (size_t)n : outsz - 1;
}

static finding *find(const findings *f, finding_id id)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->items[i].id == id)
            return &f->items[i];
    return NULL;
}

int findings_has(const findings *f, finding_id id)
{
    return find(f, id) != NULL;
}

int findings_add(findings *f, finding_id id, int64_t ms, uint64_t sid, const char *line, size_t len)
{
    finding *x = find(f, id);
    if (x != NULL) {
        if (x->count < UINT32_MAX)
            x->count++;
        return 0;
    }
    if (f->items == NULL) { /* one record per id at most: the whole array at once, on the first finding */
        f->items = calloc(FINDING_COUNT, sizeof(*f->items));
        if (f->items == NULL)
            return -1;
    }
    x = &f->items[f->n++];
    x->id = id;
    x->count = 1;
    x->first_ms = ms;
    x->session = sid;
    x->line_len = len < FINDING_LINE_MAX ? len : FINDING_LINE_MAX;
    if (x->line_len > 0)
        memcpy(x->line, line, x->line_len);
    return 1;
}

cJSON *finding_json(const finding *x)
{
    char line[FINDING_LINE_MAX * 4 + 1];
    log_sanitize(x->line, x->line_len, line, sizeof(line));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", finding_name(x->id));
    cJSON_AddStringToObject(o, "severity", finding_severity_name(finding_severity_of(x->id)));
    cJSON_AddStringToObject(o, "reference", finding_reference(x->id));
    cJSON_AddNumberToObject(o, "count", (double)x->count);
    json_add_time(o, "time", x->first_ms);
    cJSON_AddNumberToObject(o, "session", (double)x->session);
    cJSON_AddStringToObject(o, "line", line);
    return o;
}

cJSON *findings_json(const findings *f)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; f != NULL && i < f->n; i++)
        cJSON_AddItemToArray(a, finding_json(&f->items[i]));
    return a;
}

void findings_move(findings *to, findings *from)
{
    *to = *from;
    from->items = NULL;
    from->n = 0;
}

void findings_free(findings *f)
{
    free(f->items);
    f->items = NULL;
    f->n = 0;
}

void findings_text_scan_init(findings_text_scan *t)
{
    memset(t, 0, sizeof(*t));
}

/* has_8bit - a byte over 0x7f in p[0..n): eight bytes at a time (message content is long) */
static int has_8bit(const char *p, size_t n)
{
    size_t i = 0;
    for (; i + sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
        uint64_t w;
        memcpy(&w, p + i, sizeof(w));
        if (w & UINT64_C(0x8080808080808080))
            return 1;
    }
    for (; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return 1;
    return 0;
}

void findings_text_scan_feed(findings_text_scan *t, const char *p, size_t n)
{
    if (n == 0)
        return;
    const char *end = p + n;
    /* memchr finds the line ends: a byte loop would cost the DATA path a third of its speed */
    for (const char *q = p; !t->bare_lf && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
        if (q == p ? !t->prev_cr : q[-1] != '\r')
            t->bare_lf = 1;
    if (t->prev_cr && p[0] != '\n')
        t->bare_cr = 1;
    for (const char *q = p; !t->bare_cr && (q = memchr(q, '\r', (size_t)(end - q))) != NULL; q++)
        if (q + 1 < end && q[1] != '\n')
            t->bare_cr = 1;
    if (!t->eightbit)
        t->eightbit = has_8bit(p, n);
    t->prev_cr = end[-1] == '\r';
}

finding_id findings_line_ending(const char *line, size_t len, size_t raw_len)
{
    if (raw_len == len + 1 && line[len] == '\n')
        return FINDING_BARE_LF;
    if (memchr(line, '\r', len) != NULL)
        return FINDING_BARE_CR;
    return FINDING_COUNT;
}
