/*
 * fault_schema.c - the JSON schema toolkit of the profile compiler: the error list, typed getters that
 * report what they expected at a JSON path, and the field-table reader that checks an object's keys and
 * reads each one by its row. It knows nothing of what a profile means: fault_profile.c has the tables.
 */
#include "fault_schema.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_assert.h"

#define MAX_ERRORS      100                  /* past this, one more line says how many were left out */
#define MAX_DELAY_MS    (24 * 3600 * 1000LL) /* a day: longer is surely a typo */
#define MAX_OBJECT_KEYS 32  /* keys an object of the schema may hold (the "do" object's 16 are the most) */
#define KEY_LIST_MAX    600 /* "expected one of: ..." */
#define NAME_LIST_MAX   800 /* "(one of: ...)" of a choice */

/* -- errors ---------------------------------------------------------------------------------------------- */

void schema_push(compiler *c, const char *text)
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

void schema_error(compiler *c, const char *path, const char *fmt, ...)
{
    if (c->errs == NULL || c->errs->n >= MAX_ERRORS) {
        c->dropped++;
        return;
    }
    /* The source is a file path or a name the admin client gave: room for a whole PATH_MAX, and the
     * message cut, never overrun, when it is longer (snprintf returns what it wanted to write). */
    char text[SCHEMA_TEXT_MAX + SCHEMA_PATH_MAX + 64 + 4096];
    int n = snprintf(text, sizeof(text), "%s: %s%s", c->source, path, path[0] ? ": " : "");
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(text) - 1) {
        schema_push(c, text);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
    va_end(ap);
    schema_push(c, text);
}

void fault_errors_free(fault_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = 0;
}

int schema_failed(const compiler *c)
{
    return c->oom || (c->errs != NULL && c->errs->n > 0) || c->dropped > 0;
}

void schema_path(char *out, const char *path, const char *key, int index)
{
    int n = key != NULL ? snprintf(out, SCHEMA_PATH_MAX, "%s%s%s", path, path[0] ? "." : "", key)
                        : snprintf(out, SCHEMA_PATH_MAX, "%s[%d]", path, index);
    if (n < 0)
        out[0] = '\0';
}

const char *schema_type_name(const cJSON *v)
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

const cJSON *schema_get(const cJSON *obj, const char *key)
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

const char *schema_text(compiler *c, const cJSON *v, const char *path, size_t max)
{
    if (!cJSON_IsString(v)) {
        schema_error(c, path, "expected a string, got %s", schema_type_name(v));
        return NULL;
    }
    if (strlen(v->valuestring) > max) {
        schema_error(c, path, "too long (at most %zu characters)", max);
        return NULL;
    }
    if (has_control(v->valuestring)) {
        schema_error(c, path, "control characters are not allowed here");
        return NULL;
    }
    return v->valuestring;
}

const char *schema_template(compiler *c, const cJSON *v, const char *path, size_t max)
{
    const char *t = schema_text(c, v, path, max);
    const char *bad = t ? fault_check_placeholders(t) : NULL;
    if (bad != NULL) {
        schema_error(c, path, "%s", bad);
        return NULL;
    }
    return t;
}

char *schema_keep(compiler *c, const char *s)
{
    char *k = fault_arena_strndup(&c->arena, s, strlen(s));
    if (k == NULL)
        c->oom = 1;
    return k;
}

int schema_bool(compiler *c, const cJSON *v, const char *path, int *out)
{
    if (!cJSON_IsBool(v)) {
        schema_error(c, path, "expected true or false, got %s", schema_type_name(v));
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

int schema_int(compiler *c, const cJSON *v, const char *path, long long min, long long max, long long *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)min ||
        v->valuedouble > (double)max) {
        schema_error(c, path, "expected a whole number from %lld to %lld, got %s", min, max,
                     cJSON_IsNumber(v) ? "a number out of range" : schema_type_name(v));
        return -1;
    }
    *out = (long long)v->valuedouble;
    return 0;
}

/* decimal_prefix - the length of a plain decimal number ("12", "1.5") at the start of s, 0 if none */
static size_t decimal_prefix(const char *s)
{
    size_t n = strspn(s, "0123456789");
    if (n > 0 && s[n] == '.' && isdigit((unsigned char)s[n + 1]))
        n += 1 + strspn(s + n + 1, "0123456789");
    return n;
}

/* unit - a suffix of a scaled number ("1.5s", "10M") and what it multiplies by */
typedef struct unit {
    const char *suffix;
    double scale;
} unit;

static const unit duration_units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
static const unit size_units[] = {{"", 1}, {"K", 1024}, {"M", 1024.0 * 1024}, {"G", 1024.0 * 1024 * 1024}};

/*
 * scaled - a plain decimal number followed by one of units' suffixes, scaled; -1 when s is not one
 * (strtod alone would take "0x10s" and "1e3ms": only plain decimals are accepted)
 */
static double scaled(const char *s, const unit *units, size_t n)
{
    size_t digits = decimal_prefix(s);
    if (digits == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s + digits, units[i].suffix) == 0)
            return strtod(s, NULL) * units[i].scale;
    return -1;
}

/*
 * schema_duration - milliseconds: a number (ms), or a string "250ms", "1.5s", "2m", "1h". Non-negative, at
 * most a day.
 */
int schema_duration(compiler *c, const cJSON *v, const char *path, int64_t *out)
{
    double ms = -1;
    if (cJSON_IsNumber(v))
        ms = v->valuedouble;
    else if (cJSON_IsString(v))
        ms = scaled(v->valuestring, duration_units, sizeof(duration_units) / sizeof(duration_units[0]));
    if (!(ms >= 0 && ms <= (double)MAX_DELAY_MS) || !isfinite(ms)) {
        schema_error(
            c, path,
            "expected a duration: milliseconds as a number, or a string such as \"250ms\", \"1.5s\", "
            "\"2m\" (at most 24h)");
        return -1;
    }
    *out = (int64_t)llround(ms);
    return 0;
}

/* schema_size - bytes: a number, or a string with a K, M or G suffix (binary) */
int schema_size(compiler *c, const cJSON *v, const char *path, uint64_t min, uint64_t max, uint64_t *out)
{
    double n = -1;
    if (cJSON_IsNumber(v))
        n = v->valuedouble;
    else if (cJSON_IsString(v))
        n = scaled(v->valuestring, size_units, sizeof(size_units) / sizeof(size_units[0]));
    if (!(n >= (double)min && n <= (double)max) || n != floor(n)) {
        schema_error(c, path,
                     "expected a size in bytes from %llu to %llu (a number, or a string such as \"10M\")",
                     (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = (uint64_t)n;
    return 0;
}

/* join - the names[0..n) as "a, b, c" into out */
static void join(char *out, size_t outsz, const char *const *names, size_t stride, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < outsz; i++) {
        const char *name = *(const char *const *)((const char *)names + i * stride);
        o += (size_t)snprintf(out + o, outsz - o, "%s%s", i ? ", " : "", name);
    }
}

/* schema_choice - a string that is one of t's names; its index, or -1 after an error */
int schema_choice(compiler *c, const cJSON *v, const char *path, const fault_names *t)
{
    char list[NAME_LIST_MAX];
    join(list, sizeof(list), t->names, sizeof(*t->names), t->n);
    if (!cJSON_IsString(v)) {
        schema_error(c, path, "expected a %s name (one of: %s), got %s", t->what, list, schema_type_name(v));
        return -1;
    }
    int i = fault_names_find(t, v->valuestring);
    if (i < 0)
        schema_error(c, path, "unknown %s \"%.64s\" (expected one of: %s)", t->what, v->valuestring, list);
    return i;
}

int schema_each(compiler *c, const cJSON *v, const char *path, schema_item_fn fn, void *ctx)
{
    if (!cJSON_IsArray(v)) {
        fn(c, v, path, ctx, 0);
        return 1;
    }
    int n = cJSON_GetArraySize(v);
    if (n == 0 || n > SCHEMA_LIST_MAX) {
        schema_error(c, path, "expected a list of 1 to %d items", SCHEMA_LIST_MAX);
        return -1;
    }
    int i = 0;
    for (const cJSON *e = v->child; e != NULL; e = e->next, i++) {
        char p[SCHEMA_PATH_MAX];
        schema_path(p, path, NULL, i);
        fn(c, e, p, ctx, (size_t)i);
    }
    return n;
}

/* -- field tables ---------------------------------------------------------------------------------------- */

/*
 * schema_check - linear in obj's keys: the keys seen are marked by their row in fields[], not looked for
 * among the keys before them.
 */
int schema_check(compiler *c, const cJSON *obj, const char *path, const field *fields, size_t n)
{
    if (!cJSON_IsObject(obj)) {
        schema_error(c, path, "expected an object, got %s", schema_type_name(obj));
        return -1;
    }
    SF_ASSERT(n <= MAX_OBJECT_KEYS);
    unsigned char seen[MAX_OBJECT_KEYS] = {0};
    for (const cJSON *k = obj->child; k != NULL; k = k->next) {
        char p[SCHEMA_PATH_MAX];
        schema_path(p, path, k->string, 0);
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(k->string, fields[i].key) == 0)
                break;
        if (i == n) {
            char list[KEY_LIST_MAX];
            join(list, sizeof(list), &fields[0].key, sizeof(*fields), n);
            schema_error(c, p, "unknown key (expected one of: %s)", list);
            continue;
        }
        if (seen[i])
            schema_error(c, p, "duplicate key");
        seen[i] = 1;
    }
    return 0;
}

/* store_int - x into the integer of f->size bytes at base + f->off (size 0: nowhere) */
static void store_int(void *base, const field *f, long long x)
{
    char *slot = (char *)base + f->off;
    SF_ASSERT(f->size == 0 || f->size == sizeof(int32_t) || f->size == sizeof(int64_t));
    if (f->size == sizeof(int32_t)) {
        SF_ASSERT(x >= INT32_MIN && x <= (long long)UINT32_MAX); /* the row's range fits its member */
        int32_t v = (int32_t)(uint32_t)x;
        memcpy(slot, &v, sizeof(v));
    } else if (f->size == sizeof(int64_t)) {
        int64_t v = (int64_t)x;
        memcpy(slot, &v, sizeof(v));
    }
}

/* store_ptr - a pointer into base + f->off (size 0: nowhere) */
static void store_ptr(void *base, const field *f, const void *p)
{
    SF_ASSERT(f->size == 0 || f->size == sizeof(p));
    if (f->size == sizeof(p))
        memcpy((char *)base + f->off, &p, sizeof(p));
}

typedef struct set_ctx {
    const fault_names *names;
    unsigned bits;
} set_ctx;

/* set_item - one name of an F_SET, as its bit */
static void set_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    (void)index;
    set_ctx *s = ctx;
    int i = schema_choice(c, item, path, s->names);
    if (i >= 0)
        s->bits |= 1u << i;
}

/* read_value - v as f's type into base; 0, or -1 after an error */
static int read_value(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    long long n;
    int64_t ms;
    uint64_t bytes;
    int flag, i;
    const char *t;
    switch (f->type) {
    case F_TEXT:
    case F_TEMPLATE:
        t = f->type == F_TEXT ? schema_text(c, v, path, (size_t)f->max)
                              : schema_template(c, v, path, (size_t)f->max);
        if (t != NULL && f->size != 0)
            store_ptr(base, f, schema_keep(c, t));
        return t != NULL ? 0 : -1;
    case F_BOOL:
    case F_FLAG:
        if (schema_bool(c, v, path, &flag) != 0)
            return -1;
        store_int(base, f, flag);
        if (f->type == F_FLAG && !flag) {
            schema_error(c, path, "false is the same as leaving the key out: remove it");
            return -1;
        }
        return 0;
    case F_INT:
        if (schema_int(c, v, path, f->min, f->max, &n) != 0)
            return -1;
        store_int(base, f, n);
        return 0;
    case F_DURATION:
        if (schema_duration(c, v, path, &ms) != 0)
            return -1;
        store_int(base, f, ms);
        return 0;
    case F_SIZE:
        if (schema_size(c, v, path, (uint64_t)f->min, (uint64_t)f->max, &bytes) != 0)
            return -1;
        store_int(base, f, (long long)bytes);
        return 0;
    case F_CHOICE: {
        const fault_names *names = f->arg;
        if ((i = schema_choice(c, v, path, names)) < 0)
            return -1;
        store_int(base, f, names->values != NULL ? names->values[i] : i);
        return 0;
    }
    case F_SET: {
        set_ctx s = {f->arg, 0};
        SF_ASSERT(f->size == sizeof(s.bits) && s.names->n <= sizeof(s.bits) * 8);
        schema_each(c, v, path, set_item, &s);
        unsigned bits;
        memcpy(&bits, (char *)base + f->off, sizeof(bits));
        bits |= s.bits;
        memcpy((char *)base + f->off, &bits, sizeof(bits));
        return 0;
    }
    case F_OBJECT: {
        const schema_table *table = f->arg;
        return schema_parse(c, v, path, table->fields, table->n, (char *)base + f->off);
    }
    case F_CUSTOM:
        return f->parse(c, v, path, f, base);
    }
    SF_UNREACHABLE("a field type without a reader");
    return -1;
}

int schema_read_one(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    if (read_value(c, v, path, f, base) != 0)
        return -1;
    const char *bad = f->check != NULL ? f->check(base) : NULL;
    if (bad != NULL) {
        schema_error(c, path, "%s", bad);
        return -1;
    }
    return 0;
}

void schema_read(compiler *c, const cJSON *obj, const char *path, const field *fields, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        const field *f = &fields[i];
        const cJSON *v = schema_get(obj, f->key);
        char p[SCHEMA_PATH_MAX];
        schema_path(p, path, f->key, 0);
        if (v != NULL)
            schema_read_one(c, v, p, f, base);
        else if (f->missing != NULL)
            schema_error(c, p, "%s", f->missing);
    }
}

int schema_parse(compiler *c, const cJSON *obj, const char *path, const field *fields, size_t n, void *base)
{
    if (schema_check(c, obj, path, fields, n) != 0)
        return -1;
    schema_read(c, obj, path, fields, n, base);
    return 0;
}
