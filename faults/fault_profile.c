/*
 * fault_profile.c - the profile compiler: JSON text to an immutable fault_profile.
 *
 * Every object is checked against a table of the keys it may hold: an unknown or duplicate key is an
 * error, and so is a value of the wrong type or out of range. Each error names the source, the JSON path
 * and what was expected; the compiler goes on after an error so that one run reports them all, and a
 * profile with any error is not built at all. cJSON is used only here: the compiled profile holds plain C
 * data in one arena, so the engine never walks JSON while serving.
 */
#include "fault_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#define MAX_ERRORS       100 /* past this, one more line says how many were left out */
#define MAX_RULES        1000
#define MAX_LIST         256                  /* entries in any condition list */
#define MAX_TEXT         512                  /* a reply line, a host name, a pattern */
#define MAX_RAW          4096                 /* raw bytes of one action */
#define MAX_DELAY_MS     (24 * 3600 * 1000LL) /* a day: longer is surely a typo */
#define MAX_PROFILE_TEXT (4 * 1024 * 1024)
#define MAX_OBJECT_KEYS  32 /* keys an object of the schema may hold (the "do" object's 16 are the most) */
#define PATH_MAX_LEN     200

/* -- arena ---------------------------------------------------------------------------------------------- */

struct fault_arena {
    struct fault_arena *next;
    size_t used, cap;
    max_align_t data[];
};

#define ARENA_BLOCK 16384

static void *arena_alloc(fault_arena **a, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (*a == NULL || (*a)->cap - (*a)->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        fault_arena *b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->next = *a;
        b->used = 0;
        b->cap = cap;
        *a = b;
    }
    void *p = (char *)(*a)->data + (*a)->used;
    (*a)->used += size;
    memset(p, 0, size);
    return p;
}

static char *arena_strndup(fault_arena **a, const char *s, size_t n)
{
    char *c = arena_alloc(a, n + 1);
    if (c != NULL) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

static void arena_free(fault_arena *a)
{
    while (a != NULL) {
        fault_arena *next = a->next;
        free(a);
        a = next;
    }
}

/* -- compile context and errors ------------------------------------------------------------------------ */

typedef struct compiler {
    const char *source;
    fault_errors *errs;
    size_t dropped;
    fault_arena *arena;
    int oom;
} compiler;

/* push - append one message, whatever the count */
static void push(compiler *c, const char *text)
{
    char **msgs = realloc(c->errs->msgs, (c->errs->n + 1) * sizeof(*msgs));
    char *copy = strdup(text);
    if (msgs == NULL || copy == NULL) {
        free(copy);
        if (msgs != NULL)
            c->errs->msgs = msgs;
        c->oom = 1;
        return;
    }
    c->errs->msgs = msgs;
    c->errs->msgs[c->errs->n++] = copy;
}

static void error(compiler *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error(compiler *c, const char *path, const char *fmt, ...)
{
    if (c->errs == NULL || c->errs->n >= MAX_ERRORS) {
        c->dropped++;
        return;
    }
    char text[MAX_TEXT + PATH_MAX_LEN + 64];
    int n = snprintf(text, sizeof(text), "%s: %s%s", c->source, path, path[0] ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
    va_end(ap);
    push(c, text);
}

void fault_errors_free(fault_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = 0;
}

static int failed(const compiler *c)
{
    return c->oom || (c->errs != NULL && c->errs->n > 0) || c->dropped > 0;
}

/* sub - path.key, or path[i] when key is NULL (paths are cut at PATH_MAX_LEN; none is near it) */
static void sub(char *out, const char *path, const char *key, int index)
{
    int n = key != NULL ? snprintf(out, PATH_MAX_LEN, "%s%s%s", path, path[0] ? "." : "", key)
                        : snprintf(out, PATH_MAX_LEN, "%s[%d]", path, index);
    if (n < 0)
        out[0] = '\0';
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "an invalid value";
}

/* -- object schemas ------------------------------------------------------------------------------------- */

/*
 * check_keys - every key of obj must be one of keys[] and appear once. Returns 0 when obj is an object
 * (whatever its keys), -1 (with an error) when it is not one. Linear in obj's keys: the keys seen are
 * marked by their index in keys[], not looked for among the keys before them.
 */
static int check_keys(compiler *c, const cJSON *obj, const char *path, const char *const *keys, size_t nkeys)
{
    if (!cJSON_IsObject(obj)) {
        error(c, path, "expected an object, got %s", type_name(obj));
        return -1;
    }
    unsigned char seen[MAX_OBJECT_KEYS] = {0};
    if (nkeys > MAX_OBJECT_KEYS)
        nkeys = MAX_OBJECT_KEYS; /* never: the schema's tables are smaller */
    for (const cJSON *k = obj->child; k != NULL; k = k->next) {
        char p[PATH_MAX_LEN];
        sub(p, path, k->string, 0);
        size_t i;
        for (i = 0; i < nkeys; i++)
            if (strcmp(k->string, keys[i]) == 0)
                break;
        if (i == nkeys) {
            char list[600];
            size_t o = 0;
            list[0] = '\0';
            for (size_t j = 0; j < nkeys && o < sizeof(list); j++)
                o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", j ? ", " : "", keys[j]);
            error(c, p, "unknown key (expected one of: %s)", list);
            continue;
        }
        if (seen[i])
            error(c, p, "duplicate key");
        seen[i] = 1;
    }
    return 0;
}

/* get - obj's first member named key, case-sensitively (cJSON_GetObjectItem ignores case) */
static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* -- scalar values -------------------------------------------------------------------------------------- */

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t')
            return 1;
    return 0;
}

/* get_text - a string without control characters, at most max bytes; NULL (after an error) otherwise */
static const char *get_text(compiler *c, const cJSON *v, const char *path, size_t max)
{
    if (!cJSON_IsString(v)) {
        error(c, path, "expected a string, got %s", type_name(v));
        return NULL;
    }
    if (strlen(v->valuestring) > max) {
        error(c, path, "too long (at most %zu characters)", max);
        return NULL;
    }
    if (has_control(v->valuestring)) {
        error(c, path, "control characters are not allowed here");
        return NULL;
    }
    return v->valuestring;
}

static char *keep_text(compiler *c, const char *s)
{
    char *k = arena_strndup(&c->arena, s, strlen(s));
    if (k == NULL)
        c->oom = 1;
    return k;
}

static int get_bool(compiler *c, const cJSON *v, const char *path, int *out)
{
    if (!cJSON_IsBool(v)) {
        error(c, path, "expected true or false, got %s", type_name(v));
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* get_int - a whole number within [min, max] */
static int get_int(compiler *c, const cJSON *v, const char *path, long long min, long long max,
                   long long *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)min ||
        v->valuedouble > (double)max) {
        error(c, path, "expected a whole number from %lld to %lld, got %s", min, max,
              cJSON_IsNumber(v) ? "a number out of range" : type_name(v));
        return -1;
    }
    *out = (long long)v->valuedouble;
    return 0;
}

/*
 * get_duration - milliseconds: a number (ms), or a string "250ms", "1.5s", "2m", "1h". Non-negative, at
 * most a day.
 */
/* decimal_prefix - the length of a plain decimal number ("12", "1.5") at the start of s, 0 if none */
static size_t decimal_prefix(const char *s)
{
    size_t n = strspn(s, "0123456789");
    if (n > 0 && s[n] == '.' && isdigit((unsigned char)s[n + 1]))
        n += 1 + strspn(s + n + 1, "0123456789");
    return n;
}

static int get_duration(compiler *c, const cJSON *v, const char *path, int64_t *out)
{
    double ms = -1;
    if (cJSON_IsNumber(v)) {
        ms = v->valuedouble;
    } else if (cJSON_IsString(v)) {
        /* strtod alone would take "0x10s" and "1e3ms": only plain decimals are durations */
        size_t digits = decimal_prefix(v->valuestring);
        const char *end = v->valuestring + digits;
        double n = strtod(v->valuestring, NULL);
        double scale = 0;
        if (digits > 0) {
            if (strcmp(end, "ms") == 0)
                scale = 1;
            else if (strcmp(end, "s") == 0)
                scale = 1000;
            else if (strcmp(end, "m") == 0)
                scale = 60000;
            else if (strcmp(end, "h") == 0)
                scale = 3600000;
        }
        if (scale > 0)
            ms = n * scale;
    }
    if (!(ms >= 0 && ms <= (double)MAX_DELAY_MS) || !isfinite(ms)) {
        error(c, path,
              "expected a duration: milliseconds as a number, or a string such as \"250ms\", \"1.5s\", "
              "\"2m\" (at most 24h)");
        return -1;
    }
    *out = (int64_t)llround(ms);
    return 0;
}

/* get_size - bytes: a number, or a string with a K, M or G suffix (binary) */
static int get_size(compiler *c, const cJSON *v, const char *path, uint64_t min, uint64_t max, uint64_t *out)
{
    double n = -1;
    if (cJSON_IsNumber(v)) {
        n = v->valuedouble;
    } else if (cJSON_IsString(v)) {
        size_t digits = decimal_prefix(v->valuestring);
        const char *end = v->valuestring + digits;
        n = strtod(v->valuestring, NULL);
        if (digits == 0)
            n = -1;
        else if (*end == 'K' && end[1] == '\0')
            n *= 1024;
        else if (*end == 'M' && end[1] == '\0')
            n *= 1024 * 1024;
        else if (*end == 'G' && end[1] == '\0')
            n *= 1024.0 * 1024 * 1024;
        else if (*end != '\0')
            n = -1;
    }
    if (!(n >= (double)min && n <= (double)max) || n != floor(n)) {
        error(c, path, "expected a size in bytes from %llu to %llu (a number, or a string such as \"10M\")",
              (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = (uint64_t)n;
    return 0;
}

/* get_choice - a string that is one of names[]; its index, or -1 after an error */
static int get_choice(compiler *c, const cJSON *v, const char *path, const char *what,
                      const char *const *names, size_t n)
{
    char list[800];
    size_t o = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", names[i]);
    if (!cJSON_IsString(v)) {
        error(c, path, "expected a %s name (one of: %s), got %s", what, list, type_name(v));
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(v->valuestring, names[i]) == 0)
            return (int)i;
    error(c, path, "unknown %s \"%.64s\" (expected one of: %s)", what, v->valuestring, list);
    return -1;
}

/*
 * for_each - call fn for v, or for each element of v when it is an array ("a string or a list of them").
 * Returns the number of items, or -1 after an error (an empty or over-long list).
 */
typedef void (*item_fn)(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index);

static int for_each(compiler *c, const cJSON *v, const char *path, item_fn fn, void *ctx)
{
    if (!cJSON_IsArray(v)) {
        fn(c, v, path, ctx, 0);
        return 1;
    }
    int n = cJSON_GetArraySize(v);
    if (n == 0 || n > MAX_LIST) {
        error(c, path, "expected a list of 1 to %d items", MAX_LIST);
        return -1;
    }
    int i = 0;
    for (const cJSON *e = v->child; e != NULL; e = e->next, i++) {
        char p[PATH_MAX_LEN];
        sub(p, path, NULL, i);
        fn(c, e, p, ctx, (size_t)i);
    }
    return n;
}

/* -- names ---------------------------------------------------------------------------------------------- */

static const char *const stage_names[] = {
#define STAGE_NAME(e, s) s,
    FAULT_STAGE_LIST(STAGE_NAME)
#undef STAGE_NAME
};

static const char *const listener_names[] = {
#define LISTENER_NAME(e, s) s,
    FAULT_LISTENER_LIST(LISTENER_NAME)
#undef LISTENER_NAME
};

static const char *const cert_names[] = {
#define CERT_NAME(e, name, stem, what) name,
    FAULT_CERT_LIST(CERT_NAME)
#undef CERT_NAME
};

static const char *const version_names[] = {
#define VERSION_NAME(e, name) name,
    FAULT_TLS_VERSION_LIST(VERSION_NAME)
#undef VERSION_NAME
};

static const char *const alert_names[] = {
#define ALERT_NAME(name, num) #name,
    FAULT_TLS_ALERT_LIST(ALERT_NAME)
#undef ALERT_NAME
};

static const int alert_numbers[] = {
#define ALERT_NUM(name, num) num,
    FAULT_TLS_ALERT_LIST(ALERT_NUM)
#undef ALERT_NUM
};

static const char *const mech_names[] = {
#define MECH_NAME(e, name, clear) name,
    FAULT_AUTH_MECH_LIST(MECH_NAME)
#undef MECH_NAME
};

static const char *const ehlo_names[] = {
#define EHLO_NAME(e, s) s,
    FAULT_EHLO_CAP_LIST(EHLO_NAME)
#undef EHLO_NAME
};

static const char *const action_names[] = {
#define ACTION_NAME(e, s) s,
    FAULT_ACTION_LIST(ACTION_NAME)
#undef ACTION_NAME
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *fault_action_name(fault_action_kind kind)
{
    return (unsigned)kind < FAULT_ACTION_COUNT ? action_names[kind] : "?";
}

static int find_name(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

const char *fault_cert_name(int kind)
{
    return kind >= 0 && (size_t)kind < COUNT(cert_names) ? cert_names[kind] : "?";
}

int fault_cert_parse(const char *name)
{
    return find_name(cert_names, COUNT(cert_names), name);
}

const char *fault_tls_version_name(int version)
{
    return version >= 0 && (size_t)version < COUNT(version_names) ? version_names[version] : "?";
}

int fault_tls_version_parse(const char *name)
{
    return find_name(version_names, COUNT(version_names), name);
}

const char *fault_tls_alert_name(int description)
{
    for (size_t i = 0; i < COUNT(alert_numbers); i++)
        if (alert_numbers[i] == description)
            return alert_names[i];
    return "unknown";
}

int fault_tls_alert_parse(const char *name)
{
    int i = find_name(alert_names, COUNT(alert_names), name);
    return i < 0 ? -1 : alert_numbers[i];
}

const char *fault_ehlo_cap_name(fault_ehlo_cap cap)
{
    return (unsigned)cap < FAULT_EHLO_COUNT ? ehlo_names[cap] : "?";
}

/* -- addresses and replies ------------------------------------------------------------------------------- */

int fault_parse_addr(const char *text, fault_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        out->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->bytes) == 1) {
        out->family = 6;
        return 0;
    }
    return -1;
}

void fault_addr_text(const fault_addr *a, char *out, size_t outsz)
{
    if (inet_ntop(a->family == 6 ? AF_INET6 : AF_INET, a->bytes, out, (socklen_t)outsz) == NULL)
        snprintf(out, outsz, "?");
}

int fault_format_reply(const char *const *lines, size_t n, char *out, size_t outsz, int *code, char *err,
                       size_t errsz)
{
    if (n == 0) {
        snprintf(err, errsz, "a reply needs at least one line");
        return -1;
    }
    const char *first = lines[0];
    if (!(first[0] >= '2' && first[0] <= '5' && isdigit((unsigned char)first[1]) &&
          isdigit((unsigned char)first[2]) && (first[3] == '\0' || first[3] == ' ' || first[3] == '-'))) {
        snprintf(err, errsz,
                 "a reply starts with a code from 200 to 599, then a space (\"550 5.1.1 User "
                 "unknown\"), got \"%.40s\"",
                 first);
        return -1;
    }
    *code = (first[0] - '0') * 100 + (first[1] - '0') * 10 + (first[2] - '0');
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *text = lines[i];
        int coded = isdigit((unsigned char)text[0]) && isdigit((unsigned char)text[1]) &&
                    isdigit((unsigned char)text[2]) && (text[3] == '\0' || text[3] == ' ' || text[3] == '-');
        if (coded && strncmp(text, first, 3) != 0) {
            snprintf(err, errsz,
                     "line %zu of the reply has the code %.3s, line 1 has %.3s: a reply has one code", i + 1,
                     text, first);
            return -1;
        }
        if (coded)
            text += text[3] ? 4 : 3; /* the line repeats the code */
        size_t len = strlen(text);
        while (len > 0 && text[len - 1] == '\r')
            len--;
        for (size_t j = 0; j < len; j++)
            if ((unsigned char)text[j] < 0x20 && text[j] != '\t') {
                snprintf(err, errsz, "line %zu of the reply holds a control character", i + 1);
                return -1;
            }
        if (len > MAX_TEXT - 6) {
            snprintf(err, errsz, "line %zu of the reply is over %d characters", i + 1, MAX_TEXT - 6);
            return -1;
        }
        if (o + len + 6 >= outsz) {
            snprintf(err, errsz, "the reply is over %zu bytes", outsz);
            return -1;
        }
        memcpy(out + o, first, 3);
        o += 3;
        if (len > 0 || i + 1 < n)
            out[o++] = i + 1 < n ? '-' : ' ';
        memcpy(out + o, text, len);
        o += len;
        out[o++] = '\r';
        out[o++] = '\n';
    }
    out[o] = '\0';
    return (int)o;
}

static const char *const placeholder_names[] = {
#define PLACEHOLDER_NAME(name, what) #name,
    FAULT_PLACEHOLDER_LIST(PLACEHOLDER_NAME)
#undef PLACEHOLDER_NAME
};

/* placeholder_at - the placeholder "{name}" at s (its index and length), or -1 */
static int placeholder_at(const char *s, size_t avail, size_t *len)
{
    for (size_t i = 0; i < COUNT(placeholder_names); i++) {
        size_t n = strlen(placeholder_names[i]);
        if (avail >= n + 2 && s[0] == '{' && strncmp(s + 1, placeholder_names[i], n) == 0 &&
            s[n + 1] == '}') {
            *len = n + 2;
            return (int)i;
        }
    }
    return -1;
}

const char *fault_check_placeholders(const char *text)
{
    size_t len = strlen(text), plen;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '{')
            continue;
        if (i + 1 < len && text[i + 1] == '{') {
            i++;
            continue;
        }
        if (placeholder_at(text + i, len - i, &plen) < 0)
            return "an unknown placeholder: the text may hold {client}, {sender}, {rcpt}, {helo}, {user}, "
                   "{hostname} and {listener} (write {{ and }} for literal braces)";
        i += plen - 1;
    }
    return NULL;
}

/* put - one byte of output at *o when it fits (the NUL included); *o counts every byte either way */
static void put(char *out, size_t outsz, size_t *o, char ch)
{
    if (*o + 1 < outsz)
        out[*o] = ch;
    (*o)++;
}

/* terminate - the NUL after what fit */
static size_t terminate(char *out, size_t outsz, size_t o)
{
    if (outsz > 0)
        out[o < outsz ? o : outsz - 1] = '\0';
    return o;
}

size_t fault_expand(const char *text, size_t len, const fault_vars *vars, char *out, size_t outsz)
{
    size_t o = 0, plen;
    for (size_t i = 0; i < len; i++) {
        int p;
        if ((text[i] == '{' || text[i] == '}') && i + 1 < len && text[i + 1] == text[i]) {
            put(out, outsz, &o, text[i]); /* "{{" and "}}" are literal braces */
            i++;
        } else if (text[i] == '{' && (p = placeholder_at(text + i, len - i, &plen)) >= 0) {
            for (const char *v = vars->v[p] ? vars->v[p] : ""; *v; v++)
                if ((unsigned char)*v >= 0x20) /* a value never breaks the reply's lines */
                    put(out, outsz, &o, *v);
            i += plen - 1;
        } else {
            put(out, outsz, &o, text[i]);
        }
    }
    return terminate(out, outsz, o);
}

/* enhanced_code_len - the length of "X.Y.Z " at the start of a reply line's text, or 0 (RFC 3463) */
static size_t enhanced_code_len(const char *t, size_t len)
{
    size_t i = 0;
    if (len < 6 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (i < len && digits < 4 && isdigit((unsigned char)t[i]))
            i++, digits++;
        if (digits == 0 || digits > 3 || i >= len || t[i] != (part == 0 ? '.' : ' '))
            return 0;
        i++;
    }
    return i;
}

size_t fault_fold_reply(const char *in, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    for (const char *p = in, *end = in + len; p < end;) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
        const char *next = eol ? eol + 2 : end;
        if (n + 2 <= FAULT_REPLY_LINE_MAX || n < 4) {
            for (size_t i = 0; i < n; i++)
                put(out, outsz, &o, p[i]);
            put(out, outsz, &o, '\r');
            put(out, outsz, &o, '\n');
            p = next;
            continue;
        }
        /* CODE SEP [X.Y.Z ]text: each piece repeats the code and the enhanced code (RFC 2034 section 4). */
        size_t esc = enhanced_code_len(p + 4, n - 4);
        const char *body = p + 4 + esc;
        size_t left = n - 4 - esc, room = FAULT_REPLY_LINE_MAX - 2 - 4 - esc;
        do {
            size_t take = left < room ? left : room;
            while (take < left && take > 0 && ((unsigned char)body[take] & 0xC0) == 0x80)
                take--; /* never inside a UTF-8 sequence */
            if (take == 0)
                take = room;
            for (size_t i = 0; i < 3; i++)
                put(out, outsz, &o, p[i]);
            put(out, outsz, &o, take == left ? p[3] : '-');
            for (size_t i = 0; i < esc; i++)
                put(out, outsz, &o, p[4 + i]);
            for (size_t i = 0; i < take; i++)
                put(out, outsz, &o, body[i]);
            put(out, outsz, &o, '\r');
            put(out, outsz, &o, '\n');
            body += take;
            left -= take;
        } while (left > 0);
        p = next;
    }
    return terminate(out, outsz, o);
}

/* reply_lines - a reply value: "text" (lines split at \n) or ["line", ...]; compiled into act */
static void compile_reply(compiler *c, const cJSON *v, const char *path, fault_action *act)
{
    const char *lines[64];
    size_t n = 0;
    char *copy = NULL;
    if (cJSON_IsString(v)) {
        copy = strdup(v->valuestring);
        if (copy == NULL) {
            c->oom = 1;
            return;
        }
        for (char *line = copy, *next; line != NULL; line = next) {
            next = strchr(line, '\n');
            if (next != NULL)
                *next++ = '\0';
            if (next != NULL && *next == '\0')
                next = NULL; /* "550 x\r\n": a final line break ends the last line, it starts none */
            if (n == COUNT(lines)) {
                error(c, path, "expected a reply of at most %zu lines", COUNT(lines));
                free(copy);
                return;
            }
            lines[n++] = line;
        }
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0 && cJSON_GetArraySize(v) <= (int)COUNT(lines)) {
        for (const cJSON *e = v->child; e != NULL; e = e->next) {
            if (!cJSON_IsString(e)) {
                error(c, path, "expected reply lines as strings, got %s", type_name(e));
                return;
            }
            lines[n++] = e->valuestring;
        }
    } else {
        error(c, path,
              "expected a reply: a string such as \"550 5.1.1 User unknown\" (\\n between lines), or a "
              "list of lines (at most %zu)",
              COUNT(lines));
        return;
    }
    char buf[FAULT_REPLY_MAX], why[160];
    int len = fault_format_reply(lines, n, buf, sizeof(buf), &act->reply_code, why, sizeof(why));
    free(copy);
    if (len < 0) {
        error(c, path, "%s", why);
        return;
    }
    const char *bad = fault_check_placeholders(buf);
    if (bad != NULL) {
        error(c, path, "%s", bad);
        return;
    }
    act->reply = keep_text(c, buf);
    act->reply_len = (size_t)len;
}

/* -- conditions -------------------------------------------------------------------------------------------
 */

typedef struct list_ctx {
    const char **v;
    size_t n;
} list_ctx;

static void text_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    list_ctx *l = ctx;
    const char *t = get_text(c, item, path, MAX_TEXT);
    if (t != NULL)
        l->v[index] = keep_text(c, t);
}

/* compile_globs - a pattern or a list of them */
static void compile_globs(compiler *c, const cJSON *v, const char *path, fault_globs *out)
{
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    const char **arr = arena_alloc(&c->arena, sizeof(*arr) * (size_t)(n > 0 ? n : 1));
    if (arr == NULL) {
        c->oom = 1;
        return;
    }
    list_ctx l = {arr, 0};
    int got = for_each(c, v, path, text_item, &l);
    out->v = arr;
    out->n = got > 0 ? (size_t)got : 0;
}

static void listener_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    list_ctx *l = ctx;
    int i = get_choice(c, item, path, "listener", listener_names, COUNT(listener_names));
    if (i >= 0)
        l->v[index] = listener_names[i];
}

static void stage_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    (void)index;
    unsigned *stages = ctx;
    int i = get_choice(c, item, path, "stage", stage_names, COUNT(stage_names));
    if (i >= 0)
        *stages |= 1u << i;
}

typedef struct cidr_ctx {
    fault_cidr *v;
} cidr_ctx;

static void cidr_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    cidr_ctx *l = ctx;
    const char *t = get_text(c, item, path, 64);
    if (t == NULL)
        return;
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", t);
    char *slash = strchr(addr, '/');
    long prefix = -1;
    if (slash != NULL) {
        *slash = '\0';
        char *end;
        prefix = strtol(slash + 1, &end, 10);
        if (*end != '\0' || end == slash + 1)
            prefix = -2;
    }
    fault_cidr *cidr = &l->v[index];
    int max = 0;
    if (fault_parse_addr(addr, &cidr->net) == 0)
        max = cidr->net.family == 4 ? 32 : 128;
    if (max == 0 || prefix < -1 || prefix > max) {
        error(c, path,
              "expected an IP address or a CIDR block (\"127.0.0.1\", \"10.0.0.0/8\", \"::1/128\"), got "
              "\"%s\"",
              t);
        return;
    }
    cidr->prefix = prefix < 0 ? max : (int)prefix;
}

/* stages_knowing - the stages at which a fact is known, for "condition can never match" errors */
#define STAGES_ALL      ((1u << FAULT_STAGE_COUNT) - 1)
#define STAGES_PRE_HELO ((1u << FAULT_STAGE_CONNECT) | (1u << FAULT_STAGE_GREETING))
#define STAGES_TX                                                                     \
    ((1u << FAULT_STAGE_MAIL) | (1u << FAULT_STAGE_RCPT) | (1u << FAULT_STAGE_DATA) | \
     (1u << FAULT_STAGE_DATA_END))
#define STAGES_RCPT ((1u << FAULT_STAGE_RCPT) | (1u << FAULT_STAGE_DATA) | (1u << FAULT_STAGE_DATA_END))

static void stage_list(unsigned stages, char *out, size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < FAULT_STAGE_COUNT && o < outsz; i++)
        if (stages & (1u << i))
            o += (size_t)snprintf(out + o, outsz - o, "%s%s", o ? ", " : "", stage_names[i]);
}

/* need_stages - the rule's stages must all be among known; an error naming the fact otherwise */
static void need_stages(compiler *c, const char *path, unsigned rule_stages, unsigned known, const char *what)
{
    unsigned bad = rule_stages & ~known;
    if (rule_stages == 0 || bad == 0)
        return;
    char badlist[300], oklist[300];
    stage_list(bad, badlist, sizeof(badlist));
    stage_list(known, oklist, sizeof(oklist));
    error(c, path, "%s is not known at stage %s, so the rule could never fire there (known at: %s)", what,
          badlist, oklist);
}

static const char *const when_keys[] = {"stage", "listener",    "client", "helo",  "sender", "rcpt",
                                        "user",  "tls",         "auth",   "nth",   "every",  "times",
                                        "count", "probability", "after",  "until", "comment"};

static void compile_when(compiler *c, const cJSON *w, const char *path, fault_rule *r)
{
    char p[PATH_MAX_LEN];
    r->tls = r->auth = -1;
    r->probability = -1;
    r->after_ms = r->until_ms = FAULT_NO_TIME;
    if (check_keys(c, w, path, when_keys, COUNT(when_keys)) != 0)
        return;
    const cJSON *v = get(w, "stage");
    sub(p, path, "stage", 0);
    if (v == NULL)
        error(c, p,
              "missing: every rule names the stage(s) it applies to (one of: connect, greeting, ehlo, ...)");
    else
        for_each(c, v, p, stage_item, &r->stages);

    if ((v = get(w, "listener")) != NULL) {
        sub(p, path, "listener", 0);
        int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
        r->listeners = arena_alloc(&c->arena, sizeof(*r->listeners) * (size_t)(n > 0 ? n : 1));
        if (r->listeners == NULL) {
            c->oom = 1;
            return;
        }
        list_ctx l = {r->listeners, 0};
        int got = for_each(c, v, p, listener_item, &l);
        r->nlisteners = got > 0 ? (size_t)got : 0;
    }
    if ((v = get(w, "client")) != NULL) {
        sub(p, path, "client", 0);
        int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
        r->clients = arena_alloc(&c->arena, sizeof(*r->clients) * (size_t)(n > 0 ? n : 1));
        if (r->clients == NULL) {
            c->oom = 1;
            return;
        }
        cidr_ctx l = {r->clients};
        int got = for_each(c, v, p, cidr_item, &l);
        r->nclients = got > 0 ? (size_t)got : 0;
    }
    static const struct {
        const char *key;
        size_t off;
        unsigned known;
        const char *what;
    } globs[] = {
        {"helo", offsetof(fault_rule, helo), STAGES_ALL & ~STAGES_PRE_HELO, "the HELO/EHLO name"},
        {"sender", offsetof(fault_rule, sender), STAGES_TX, "the sender"},
        {"rcpt", offsetof(fault_rule, rcpt), STAGES_RCPT, "the recipient"},
        {"user", offsetof(fault_rule, user),
         STAGES_ALL & ~(STAGES_PRE_HELO | (1u << FAULT_STAGE_TLS_HANDSHAKE) | (1u << FAULT_STAGE_STARTTLS)),
         "the user name"},
    };
    for (size_t i = 0; i < COUNT(globs); i++) {
        if ((v = get(w, globs[i].key)) == NULL)
            continue;
        sub(p, path, globs[i].key, 0);
        compile_globs(c, v, p, (fault_globs *)((char *)r + globs[i].off));
        need_stages(c, p, r->stages, globs[i].known, globs[i].what);
    }
    if ((v = get(w, "tls")) != NULL) {
        sub(p, path, "tls", 0);
        get_bool(c, v, p, &r->tls);
    }
    if ((v = get(w, "auth")) != NULL) {
        sub(p, path, "auth", 0);
        get_bool(c, v, p, &r->auth);
    }
    static const char *const counters[] = {"nth", "every", "times"};
    uint32_t *slots[] = {&r->nth, &r->every, &r->times};
    for (size_t i = 0; i < COUNT(counters); i++) {
        long long n;
        if ((v = get(w, counters[i])) == NULL)
            continue;
        sub(p, path, counters[i], 0);
        if (get_int(c, v, p, 1, 1000000000, &n) == 0)
            *slots[i] = (uint32_t)n;
    }
    if ((v = get(w, "count")) != NULL) {
        static const char *const scopes[] = {"server", "connection"};
        sub(p, path, "count", 0);
        int i = get_choice(c, v, p, "counting scope", scopes, COUNT(scopes));
        r->per_connection = i == 1;
        if (i >= 0 && r->nth == 0 && r->every == 0 && r->times == 0)
            error(c, p, "only means something with nth, every or times");
    }
    if ((v = get(w, "probability")) != NULL) {
        sub(p, path, "probability", 0);
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
            error(c, p, "expected a number from 0 to 1");
        else
            r->probability = v->valuedouble;
    }
    if ((v = get(w, "after")) != NULL) {
        sub(p, path, "after", 0);
        get_duration(c, v, p, &r->after_ms);
    }
    if ((v = get(w, "until")) != NULL) {
        sub(p, path, "until", 0);
        if (get_duration(c, v, p, &r->until_ms) == 0 && r->after_ms != FAULT_NO_TIME &&
            r->until_ms <= r->after_ms)
            error(c, p, "must be later than \"after\"");
    }
    if ((v = get(w, "comment")) != NULL) {
        sub(p, path, "comment", 0);
        get_text(c, v, p, 4096);
    }
}

/* -- actions --------------------------------------------------------------------------------------------- */

static const char *const do_keys[] = {
    "delay",    "reply",     "raw",           "truncate",    "drip",     "close",  "hang",      "discard",
    "greylist", "tls_alert", "tls_plaintext", "certificate", "versions", "refuse", "blackhole", "comment"};

/* kinds_in - which action keys the "do" object holds, as 1u << fault_action_kind */
static unsigned kinds_in(const cJSON *d)
{
    unsigned kinds = 0;
    for (int i = 0; i < FAULT_ACTION_COUNT; i++)
        if (get(d, action_names[i]) != NULL)
            kinds |= 1u << i;
    return kinds;
}

#define K(name) (1u << FAULT_ACTION_##name)

/* versions_range - a list of versions as a contiguous [min, max] */
typedef struct versions_ctx {
    unsigned set;
} versions_ctx;

static void version_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    (void)index;
    versions_ctx *vc = ctx;
    int i = get_choice(c, item, path, "TLS version", version_names, COUNT(version_names));
    if (i >= 0)
        vc->set |= 1u << i;
}

/* compile_versions - ["1.2", "1.3"] into min and max; the versions must be contiguous */
static void compile_versions(compiler *c, const cJSON *v, const char *path, int *min, int *max)
{
    versions_ctx vc = {0};
    int before = c->errs ? (int)c->errs->n : 0;
    for_each(c, v, path, version_item, &vc);
    if (c->errs && (int)c->errs->n != before)
        return;
    int lo = -1, hi = -1;
    for (int i = 0; i < TLS_VERSION_COUNT; i++)
        if (vc.set & (1u << i)) {
            if (lo < 0)
                lo = i;
            hi = i;
        }
    for (int i = lo; i >= 0 && i <= hi; i++)
        if (!(vc.set & (1u << i))) {
            error(c, path, "the versions must be contiguous (TLS allows a range, not a set)");
            return;
        }
    *min = lo;
    *max = hi;
}

static void compile_do(compiler *c, const cJSON *d, const char *path, fault_rule *r)
{
    fault_action *a = &r->act;
    a->tls_alert = a->certificate = a->tls_min = a->tls_max = -1;
    if (check_keys(c, d, path, do_keys, COUNT(do_keys)) != 0)
        return;
    a->kinds = kinds_in(d);
    char p[PATH_MAX_LEN];
    const cJSON *v;
    if (a->kinds == 0) {
        error(c, path, "no action (expected at least one of: delay, reply, raw, close, hang, ...)");
        return;
    }
    int64_t ms;
    if ((v = get(d, "delay")) != NULL) {
        sub(p, path, "delay", 0);
        if (get_duration(c, v, p, &ms) == 0)
            a->delay_ms = (uint32_t)ms;
    }
    if ((v = get(d, "reply")) != NULL) {
        sub(p, path, "reply", 0);
        compile_reply(c, v, p, a);
    }
    if ((v = get(d, "raw")) != NULL) {
        sub(p, path, "raw", 0);
        if (!cJSON_IsString(v) || v->valuestring[0] == '\0' || strlen(v->valuestring) > MAX_RAW) {
            error(c, p,
                  "expected the bytes to send as a non-empty string of at most %d bytes (\\r\\n for CRLF)",
                  MAX_RAW);
        } else {
            a->raw_len = strlen(v->valuestring);
            a->raw = keep_text(c, v->valuestring);
        }
    }
    long long n;
    if ((v = get(d, "truncate")) != NULL) {
        sub(p, path, "truncate", 0);
        if (get_int(c, v, p, 1, MAX_RAW, &n) == 0)
            a->truncate = (uint32_t)n;
    }
    if ((v = get(d, "drip")) != NULL) {
        sub(p, path, "drip", 0);
        if (get_int(c, v, p, 1, 1000000, &n) == 0)
            a->drip_bps = (uint32_t)n;
    }
    if ((v = get(d, "close")) != NULL) {
        sub(p, path, "close", 0);
        if (cJSON_IsTrue(v) || (cJSON_IsString(v) && strcmp(v->valuestring, "fin") == 0))
            a->close = FAULT_CLOSE_FIN;
        else if (cJSON_IsString(v) && strcmp(v->valuestring, "reset") == 0)
            a->close = FAULT_CLOSE_RST;
        else
            error(c, p, "expected true or \"fin\" (an orderly close), or \"reset\" (an RST)");
    }
    int flag;
    static const struct {
        const char *key;
        size_t off;
    } flags[] = {
        {"hang", offsetof(fault_action, hang)},
        {"discard", offsetof(fault_action, discard)},
        {"tls_plaintext", offsetof(fault_action, tls_plaintext)},
    };
    for (size_t i = 0; i < COUNT(flags); i++) {
        if ((v = get(d, flags[i].key)) == NULL)
            continue;
        sub(p, path, flags[i].key, 0);
        if (get_bool(c, v, p, &flag) == 0) {
            if (!flag)
                error(c, p, "false is the same as leaving the key out: remove it");
            *(int *)((char *)a + flags[i].off) = flag;
        }
    }
    static const char *const listener_modes[] = {"refuse", "blackhole"};
    for (size_t i = 0; i < COUNT(listener_modes); i++) {
        if ((v = get(d, listener_modes[i])) == NULL)
            continue;
        sub(p, path, listener_modes[i], 0);
        if (get_bool(c, v, p, &flag) == 0 && !flag)
            error(c, p, "false is the same as leaving the key out: remove it");
    }
    if ((v = get(d, "greylist")) != NULL) {
        sub(p, path, "greylist", 0);
        if (get_duration(c, v, p, &ms) == 0) {
            if (ms < 1)
                error(c, p, "a greylist period must be at least 1 ms");
            a->greylist_ms = (uint32_t)ms;
        }
    }
    if ((v = get(d, "tls_alert")) != NULL) {
        sub(p, path, "tls_alert", 0);
        int i = get_choice(c, v, p, "TLS alert", alert_names, COUNT(alert_names));
        if (i >= 0)
            a->tls_alert = alert_numbers[i];
    }
    if ((v = get(d, "certificate")) != NULL) {
        sub(p, path, "certificate", 0);
        a->certificate = get_choice(c, v, p, "certificate", cert_names, COUNT(cert_names));
    }
    if ((v = get(d, "versions")) != NULL) {
        sub(p, path, "versions", 0);
        compile_versions(c, v, p, &a->tls_min, &a->tls_max);
    }
    if ((v = get(d, "comment")) != NULL) {
        sub(p, path, "comment", 0);
        get_text(c, v, p, 4096);
    }

    /* Combinations that cannot be carried out, and actions at stages where they mean nothing. */
    unsigned k = a->kinds;
    static const struct {
        unsigned a, b;
    } exclusive[] = {
        {K(HANG), K(REPLY) | K(RAW) | K(CLOSE) | K(DRIP) | K(TRUNCATE) | K(DISCARD) | K(GREYLIST)},
        {K(RAW), K(REPLY) | K(DISCARD) | K(GREYLIST)},
        {K(DISCARD), K(REPLY) | K(CLOSE) | K(GREYLIST)},
        {K(TLS_ALERT), K(TLS_PLAINTEXT) | K(RAW) | K(HANG)},
        {K(TLS_PLAINTEXT), K(RAW) | K(HANG) | K(CERTIFICATE) | K(VERSIONS)},
        {K(REFUSE), ~(K(REFUSE))},
        {K(BLACKHOLE), ~(K(BLACKHOLE))},
    };
    for (size_t i = 0; i < COUNT(exclusive); i++) {
        unsigned clash = (k & exclusive[i].a) ? (k & exclusive[i].b & ~exclusive[i].a) : 0;
        if (clash == 0)
            continue;
        int x = __builtin_ctz(exclusive[i].a), y = __builtin_ctz(clash);
        error(c, path, "\"%s\" cannot be combined with \"%s\"", action_names[x], action_names[y]);
    }
    static const struct {
        unsigned kinds;
        unsigned stages;
    } where[] = {
        {K(DISCARD), 1u << FAULT_STAGE_DATA_END},
        {K(GREYLIST), 1u << FAULT_STAGE_RCPT},
        {K(TLS_ALERT) | K(TLS_PLAINTEXT) | K(CERTIFICATE) | K(VERSIONS), 1u << FAULT_STAGE_TLS_HANDSHAKE},
        {K(REFUSE) | K(BLACKHOLE), 1u << FAULT_STAGE_CONNECT},
        {K(REPLY) | K(DRIP) | K(TRUNCATE), STAGES_ALL & ~(1u << FAULT_STAGE_TLS_HANDSHAKE)},
    };
    for (size_t i = 0; i < COUNT(where); i++) {
        unsigned used = k & where[i].kinds;
        unsigned bad = r->stages & ~where[i].stages;
        if (used == 0 || bad == 0 || r->stages == 0)
            continue;
        char badlist[300], oklist[300];
        stage_list(bad, badlist, sizeof(badlist));
        stage_list(where[i].stages, oklist, sizeof(oklist));
        sub(p, path, action_names[__builtin_ctz(used)], 0);
        error(c, p, "does not apply at stage %s (only at: %s)", badlist, oklist);
    }
}

/* listener_rule_ok - refuse/blackhole decide about the listener, before any connection: check the when */
static void check_listener_rule(compiler *c, const cJSON *w, const char *path, const fault_rule *r)
{
    static const char *const allowed[] = {"stage", "listener", "after", "until", "comment"};
    if (!cJSON_IsObject(w))
        return;
    for (const cJSON *k = w->child; k != NULL; k = k->next) {
        size_t i;
        for (i = 0; i < COUNT(allowed); i++)
            if (strcmp(k->string, allowed[i]) == 0)
                break;
        if (i < COUNT(allowed))
            continue;
        char p[PATH_MAX_LEN];
        sub(p, path, k->string, 0);
        error(c, p,
              "refuse and blackhole act on the listener before any connection exists: their rule may only "
              "use stage, listener, after and until");
    }
    (void)r;
}

static const char *const rule_keys[] = {"name", "comment", "when", "do"};

static void compile_rule(compiler *c, const cJSON *v, const char *path, fault_rule *r)
{
    r->name = "";
    if (check_keys(c, v, path, rule_keys, COUNT(rule_keys)) != 0)
        return;
    char p[PATH_MAX_LEN];
    const cJSON *x;
    if ((x = get(v, "name")) != NULL) {
        sub(p, path, "name", 0);
        const char *t = get_text(c, x, p, 100);
        if (t != NULL)
            r->name = keep_text(c, t);
    }
    if ((x = get(v, "comment")) != NULL) {
        sub(p, path, "comment", 0);
        get_text(c, x, p, 4096);
    }
    const cJSON *w = get(v, "when"), *d = get(v, "do");
    sub(p, path, "when", 0);
    if (w == NULL)
        error(c, p, "missing: every rule has a \"when\" (at least its stage)");
    else
        compile_when(c, w, p, r);
    sub(p, path, "do", 0);
    if (d == NULL)
        error(c, p, "missing: every rule has a \"do\" (what to do when it fires)");
    else
        compile_do(c, d, p, r);
    if (d != NULL && w != NULL && (r->act.kinds & (K(REFUSE) | K(BLACKHOLE)))) {
        sub(p, path, "when", 0);
        check_listener_rule(c, w, p, r);
    }
}

/* -- top-level sections ------------------------------------------------------------------------------------
 */

typedef struct user_ctx {
    const char **names, **passwords;
} user_ctx;

static void user_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    static const char *const keys[] = {"user", "password"};
    user_ctx *u = ctx;
    if (check_keys(c, item, path, keys, COUNT(keys)) != 0)
        return;
    char p[PATH_MAX_LEN];
    for (size_t i = 0; i < COUNT(keys); i++) {
        const cJSON *v = get(item, keys[i]);
        sub(p, path, keys[i], 0);
        if (v == NULL) {
            error(c, p, "missing");
            continue;
        }
        const char *t = get_text(c, v, p, 256);
        if (t != NULL && i == 0 && t[0] == '\0')
            error(c, p, "a user name cannot be empty");
        else if (t != NULL)
            (i == 0 ? u->names : u->passwords)[index] = keep_text(c, t);
    }
}

static void mech_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    (void)index;
    unsigned *mechs = ctx;
    int i = get_choice(c, item, path, "SASL mechanism", mech_names, COUNT(mech_names));
    if (i >= 0)
        *mechs |= 1u << i;
}

static void ehlo_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    (void)index;
    unsigned *caps = ctx;
    int i = get_choice(c, item, path, "EHLO capability", ehlo_names, COUNT(ehlo_names));
    if (i >= 0)
        *caps |= 1u << i;
}

static const char *const server_keys[] = {"hostname", "greeting",       "banner", "ehlo_text",
                                          "size",     "max_recipients", "users",  "auth_mechanisms",
                                          "comment"};

/* get_template - a one-line text that may hold placeholders */
static const char *get_template(compiler *c, const cJSON *v, const char *path, size_t max)
{
    const char *t = get_text(c, v, path, max);
    const char *bad = t ? fault_check_placeholders(t) : NULL;
    if (bad != NULL) {
        error(c, path, "%s", bad);
        return NULL;
    }
    return t;
}

static void compile_server(compiler *c, const cJSON *v, const char *path, fault_settings *s)
{
    if (check_keys(c, v, path, server_keys, COUNT(server_keys)) != 0)
        return;
    char p[PATH_MAX_LEN];
    const cJSON *x;
    if ((x = get(v, "hostname")) != NULL) {
        sub(p, path, "hostname", 0);
        const char *t = get_text(c, x, p, 255);
        if (t != NULL && (t[0] == '\0' || strpbrk(t, " \t") != NULL))
            error(c, p, "expected a host name without spaces");
        else if (t != NULL)
            s->hostname = keep_text(c, t);
    }
    static const struct {
        const char *key;
        size_t off;
    } templates[] = {
        {"greeting", offsetof(fault_settings, greeting)},
        {"banner", offsetof(fault_settings, banner)},
        {"ehlo_text", offsetof(fault_settings, ehlo_text)},
    };
    for (size_t i = 0; i < COUNT(templates); i++) {
        if ((x = get(v, templates[i].key)) == NULL)
            continue;
        sub(p, path, templates[i].key, 0);
        const char *t = get_template(c, x, p, 400);
        if (t != NULL)
            *(const char **)((char *)s + templates[i].off) = keep_text(c, t);
    }
    if (get(v, "greeting") != NULL && get(v, "banner") != NULL) {
        sub(p, path, "banner", 0);
        error(c, p,
              "give either \"greeting\" (the text after the host name) or \"banner\" (the whole text), "
              "not both");
    }
    if ((x = get(v, "size")) != NULL) {
        sub(p, path, "size", 0);
        get_size(c, x, p, 1, UINT64_C(1) << 40, &s->size);
    }
    long long n;
    if ((x = get(v, "max_recipients")) != NULL) {
        sub(p, path, "max_recipients", 0);
        if (get_int(c, x, p, 1, 1000000, &n) == 0)
            s->max_recipients = (size_t)n;
    }
    if ((x = get(v, "users")) != NULL) {
        sub(p, path, "users", 0);
        int count = cJSON_IsArray(x) ? cJSON_GetArraySize(x) : 0;
        if (!cJSON_IsArray(x)) {
            error(c, p, "expected a list of {\"user\": ..., \"password\": ...}, got %s", type_name(x));
        } else {
            const char **names = arena_alloc(&c->arena, sizeof(char *) * (size_t)(count + 1));
            const char **pws = arena_alloc(&c->arena, sizeof(char *) * (size_t)(count + 1));
            if (names == NULL || pws == NULL) {
                c->oom = 1;
                return;
            }
            user_ctx u = {names, pws};
            int i = 0;
            for (const cJSON *e = x->child; e != NULL; e = e->next, i++) {
                char q[PATH_MAX_LEN];
                sub(q, p, NULL, i);
                user_item(c, e, q, &u, (size_t)i);
            }
            s->has_users = 1;
            s->user_names = names;
            s->user_passwords = pws;
            s->nusers = (size_t)count;
        }
    }
    if ((x = get(v, "auth_mechanisms")) != NULL) {
        sub(p, path, "auth_mechanisms", 0);
        for_each(c, x, p, mech_item, &s->auth_mechs);
    }
    if ((x = get(v, "comment")) != NULL) {
        sub(p, path, "comment", 0);
        get_text(c, x, p, 4096);
    }
}

static void compile_tls(compiler *c, const cJSON *v, const char *path, fault_settings *s)
{
    static const char *const keys[] = {"certificate", "versions", "comment"};
    if (check_keys(c, v, path, keys, COUNT(keys)) != 0)
        return;
    char p[PATH_MAX_LEN];
    const cJSON *x;
    if ((x = get(v, "certificate")) != NULL) {
        sub(p, path, "certificate", 0);
        s->certificate = get_choice(c, x, p, "certificate", cert_names, COUNT(cert_names));
    }
    if ((x = get(v, "versions")) != NULL) {
        sub(p, path, "versions", 0);
        compile_versions(c, x, p, &s->tls_min, &s->tls_max);
    }
    if ((x = get(v, "comment")) != NULL) {
        sub(p, path, "comment", 0);
        get_text(c, x, p, 4096);
    }
}

static void compile_ehlo(compiler *c, const cJSON *v, const char *path, fault_settings *s)
{
    static const char *const keys[] = {"remove", "comment"};
    if (check_keys(c, v, path, keys, COUNT(keys)) != 0)
        return;
    char p[PATH_MAX_LEN];
    const cJSON *x;
    if ((x = get(v, "remove")) != NULL) {
        sub(p, path, "remove", 0);
        for_each(c, x, p, ehlo_item, &s->ehlo_remove);
    }
    if ((x = get(v, "comment")) != NULL) {
        sub(p, path, "comment", 0);
        get_text(c, x, p, 4096);
    }
}

/* default_reply - compile one of our own reply texts (they are known to be valid) */
static void default_reply(compiler *c, const char *text, fault_action *act)
{
    const char *lines[1] = {text};
    char buf[FAULT_REPLY_MAX], why[160];
    int len = fault_format_reply(lines, 1, buf, sizeof(buf), &act->reply_code, why, sizeof(why));
    if (len > 0) {
        act->reply = keep_text(c, buf);
        act->reply_len = (size_t)len;
        act->kinds |= K(REPLY);
    }
}

/*
 * compile_limit - a limit: a number, or {"max", "reply", "comment"} plus, for message limits (nkeys 4 or
 * 5), "at" (the stage that counts) and, for messages_per_minute (nkeys 5), "per".
 */
static void compile_limit(compiler *c, const cJSON *v, const char *path, fault_limit *l, const char *dflt,
                          size_t nkeys)
{
    static const char *const keys[] = {"max", "reply", "comment", "at", "per"};
    long long n;
    const cJSON *max = v, *reply = NULL, *per = NULL, *comment = NULL, *at = NULL;
    l->at = FAULT_STAGE_MAIL;
    if (cJSON_IsObject(v)) {
        if (check_keys(c, v, path, keys, nkeys) != 0)
            return;
        max = get(v, "max");
        reply = get(v, "reply");
        per = get(v, "per");
        comment = get(v, "comment");
        at = get(v, "at");
    }
    if (at != NULL) {
        static const char *const stages[] = {"mail", "rcpt", "data"};
        static const fault_stage values[] = {FAULT_STAGE_MAIL, FAULT_STAGE_RCPT, FAULT_STAGE_DATA};
        char q[PATH_MAX_LEN];
        sub(q, path, "at", 0);
        int i = get_choice(c, at, q, "stage", stages, COUNT(stages));
        if (i >= 0)
            l->at = values[i];
    }
    char p[PATH_MAX_LEN];
    if (comment != NULL) {
        sub(p, path, "comment", 0);
        get_text(c, comment, p, 4096);
    }
    sub(p, path, "max", 0);
    if (max == NULL)
        error(c, p, "missing");
    else if (get_int(c, max, max == v ? path : p, 1, 1000000, &n) == 0)
        l->max = (uint32_t)n;
    l->act.tls_alert = l->act.certificate = l->act.tls_min = l->act.tls_max = -1;
    if (reply != NULL) {
        sub(p, path, "reply", 0);
        compile_reply(c, reply, p, &l->act);
        l->act.kinds |= K(REPLY);
    } else {
        default_reply(c, dflt, &l->act);
    }
    if (per != NULL) {
        static const char *const scopes[] = {"client", "server"};
        sub(p, path, "per", 0);
        l->per_server = get_choice(c, per, p, "scope", scopes, COUNT(scopes)) == 1;
    }
}

static void compile_limits(compiler *c, const cJSON *v, const char *path, fault_profile *prof)
{
    static const char *const keys[] = {"connections_per_client", "messages_per_connection",
                                       "messages_per_minute", "comment"};
    if (check_keys(c, v, path, keys, COUNT(keys)) != 0)
        return;
    char p[PATH_MAX_LEN];
    const cJSON *x;
    if ((x = get(v, "connections_per_client")) != NULL) {
        sub(p, path, "connections_per_client", 0);
        compile_limit(c, x, p, &prof->conns_per_client,
                      "421 4.7.0 Too many connections from your IP, try again later", 3);
    }
    if ((x = get(v, "messages_per_connection")) != NULL) {
        sub(p, path, "messages_per_connection", 0);
        compile_limit(c, x, p, &prof->msgs_per_conn,
                      "421 4.7.0 Too many messages for this session, try again later", 4);
    }
    if ((x = get(v, "messages_per_minute")) != NULL) {
        sub(p, path, "messages_per_minute", 0);
        compile_limit(c, x, p, &prof->msgs_per_minute, "450 4.7.1 Error: too much mail, slow down", 5);
    }
    if ((x = get(v, "comment")) != NULL) {
        sub(p, path, "comment", 0);
        get_text(c, x, p, 4096);
    }
}

/* -- the profile -------------------------------------------------------------------------------------------
 */

static const char *const top_keys[] = {"name", "description", "seed",   "magic", "server",
                                       "ehlo", "tls",         "limits", "rules", "comment"};

static void settings_defaults(fault_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->name = "";
    s->description = "";
    s->magic = -1;
    s->certificate = s->tls_min = s->tls_max = -1;
}

/* json_error_position - line and column of the byte where cJSON stopped */
static void json_error_position(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void compile_top(compiler *c, const cJSON *root, fault_profile *p)
{
    if (check_keys(c, root, "", top_keys, COUNT(top_keys)) != 0)
        return;
    fault_settings *s = &p->settings;
    const cJSON *x;
    char path[PATH_MAX_LEN];
    if ((x = get(root, "name")) != NULL) {
        const char *t = get_text(c, x, "name", 100);
        if (t != NULL)
            s->name = keep_text(c, t);
    }
    if ((x = get(root, "description")) != NULL) {
        const char *t = get_text(c, x, "description", 4096);
        if (t != NULL)
            s->description = keep_text(c, t);
    }
    if ((x = get(root, "comment")) != NULL)
        get_text(c, x, "comment", 4096);
    long long n;
    if ((x = get(root, "seed")) != NULL && get_int(c, x, "seed", 0, 9007199254740991LL, &n) == 0)
        s->seed = (uint64_t)n;
    if ((x = get(root, "magic")) != NULL)
        get_bool(c, x, "magic", &s->magic);
    if ((x = get(root, "server")) != NULL)
        compile_server(c, x, "server", s);
    if ((x = get(root, "ehlo")) != NULL)
        compile_ehlo(c, x, "ehlo", s);
    if ((x = get(root, "tls")) != NULL)
        compile_tls(c, x, "tls", s);
    if ((x = get(root, "limits")) != NULL)
        compile_limits(c, x, "limits", p);
    if ((x = get(root, "rules")) != NULL) {
        int count = cJSON_IsArray(x) ? cJSON_GetArraySize(x) : -1;
        if (count < 0 || count > MAX_RULES) {
            error(c, "rules", "expected a list of at most %d rules, got %s", MAX_RULES,
                  count < 0 ? type_name(x) : "more");
            return;
        }
        p->rules = arena_alloc(&c->arena, sizeof(*p->rules) * (size_t)(count > 0 ? count : 1));
        if (p->rules == NULL) {
            c->oom = 1;
            return;
        }
        int i = 0;
        for (const cJSON *r = x->child; r != NULL; r = r->next, i++) {
            sub(path, "rules", NULL, i);
            compile_rule(c, r, path, &p->rules[i]);
        }
        p->nrules = (size_t)count;
    }
}

fault_profile *fault_profile_compile(const char *json, size_t len, const char *source, fault_errors *errs)
{
    compiler c = {source ? source : "profile", errs, 0, NULL, 0};
    if (len > MAX_PROFILE_TEXT) {
        error(&c, "", "the profile is over %d bytes", MAX_PROFILE_TEXT);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (root != NULL) { /* cJSON stops after the first value: anything but white space after it is an error */
        while (end < json + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end < json + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (root == NULL) {
        int line, col;
        json_error_position(json, end ? end : json, &line, &col);
        error(&c, "", "invalid JSON at line %d, column %d", line, col);
        return NULL;
    }
    fault_profile *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        cJSON_Delete(root);
        error(&c, "", "out of memory");
        return NULL;
    }
    p->refs = 1;
    settings_defaults(&p->settings);
    compile_top(&c, root, p);
    cJSON_Delete(root);
    if (c.dropped > 0 && errs != NULL) {
        char text[160];
        snprintf(text, sizeof(text), "%s: ... and %zu more errors", c.source, c.dropped);
        push(&c, text);
    }
    if (c.oom && errs != NULL && errs->n == 0)
        push(&c, "out of memory");
    if (!failed(&c))
        p->source = strndup(json, len);
    if (failed(&c) || p->source == NULL) {
        arena_free(c.arena);
        free(p);
        return NULL;
    }
    p->arena = c.arena;
    return p;
}

fault_profile *fault_profile_default(void)
{
    fault_profile *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->refs = 1;
    settings_defaults(&p->settings);
    p->source = strdup("{}");
    if (p->source == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

fault_profile *fault_profile_ref(fault_profile *p)
{
    p->refs++;
    return p;
}

void fault_profile_unref(fault_profile *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    arena_free(p->arena);
    free(p->source);
    free(p);
}

const fault_settings *fault_profile_settings(const fault_profile *p)
{
    return &p->settings;
}

size_t fault_profile_nrules(const fault_profile *p)
{
    return p->nrules;
}

const char *fault_profile_rule_name(const fault_profile *p, size_t i)
{
    return i < p->nrules ? p->rules[i].name : "";
}

const char *fault_profile_source(const fault_profile *p)
{
    return p->source;
}
