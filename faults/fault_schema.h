/*
 * fault_schema.h - the JSON schema toolkit of the profile compiler: the error list (every error names the
 * source and the JSON path), typed getters, and field tables that drive an object's unknown-key check, its
 * typed parse and its error messages from one row per key. Not for use outside faults/.
 */
#ifndef SMTPFAULT_FAULT_SCHEMA_H
#define SMTPFAULT_FAULT_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "fault.h"
#include "fault_arena.h"
#include "fault_names.h"

#define SCHEMA_PATH_MAX 200 /* a JSON path in an error; paths are cut here (none is near it) */
#define SCHEMA_TEXT_MAX 512 /* a reply line, a host name, a pattern */
#define SCHEMA_LIST_MAX 256 /* entries in any list of names or patterns */

/* compiler - one compilation: where errors go and where the compiled data is allocated */
typedef struct compiler {
    const char *source; /* the file or name errors start with */
    fault_errors *errs; /* NULL: count errors only */
    size_t dropped;     /* errors past the list's bound */
    fault_arena *arena;
    int oom;
} compiler;

/* schema_error - "source: path: message" into the error list (counted past its bound) */
void schema_error(compiler *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* schema_push - append one message, whatever the count (an allocation failure sets oom) */
void schema_push(compiler *c, const char *text);

/* schema_failed - whether the compilation has any error (or ran out of memory) */
int schema_failed(const compiler *c);

/* schema_path - path.key, or path[index] when key is NULL, into out (SCHEMA_PATH_MAX bytes) */
void schema_path(char *out, const char *path, const char *key, int index);

/* schema_type_name - "a string", "a number", ... for errors */
const char *schema_type_name(const cJSON *v);

/* schema_get - obj's first member named key, case-sensitively (cJSON_GetObjectItem ignores case) */
const cJSON *schema_get(const cJSON *obj, const char *key);

/* schema_keep - s copied into the arena (NULL and oom set when out of memory) */
char *schema_keep(compiler *c, const char *s);

/* The typed getters: each checks v, reports what was expected at path, and returns 0 or -1 (NULL). */
const char *schema_text(compiler *c, const cJSON *v, const char *path, size_t max);
const char *schema_template(compiler *c, const cJSON *v, const char *path, size_t max);
int schema_bool(compiler *c, const cJSON *v, const char *path, int *out);
int schema_int(compiler *c, const cJSON *v, const char *path, long long min, long long max, long long *out);
int schema_duration(compiler *c, const cJSON *v, const char *path, int64_t *out);
int schema_size(compiler *c, const cJSON *v, const char *path, uint64_t min, uint64_t max, uint64_t *out);
int schema_choice(compiler *c, const cJSON *v, const char *path, const fault_names *names);

/*
 * schema_each - call fn for v, or for each element of v when it is an array ("a string or a list of them").
 * Returns the number of items, or -1 after an error (an empty or over-long list).
 */
typedef void (*schema_item_fn)(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index);
int schema_each(compiler *c, const cJSON *v, const char *path, schema_item_fn fn, void *ctx);

/* -- field tables ---------------------------------------------------------------------------------------- */

/* field_type - how a field's value is read, and what it is stored as (at field.off, field.size bytes) */
typedef enum field_type {
    F_TEXT,     /* a string without control characters, at most max bytes: const char * in the arena */
    F_TEMPLATE, /* F_TEXT whose placeholders must be known ones */
    F_BOOL,     /* true or false: int */
    F_FLAG,     /* true (false is an error: leave the key out): int 1 */
    F_INT,      /* a whole number in [min, max]: an integer of 4 or 8 bytes */
    F_DURATION, /* milliseconds, a number or "1.5s" (at most a day): an integer of 4 or 8 bytes */
    F_SIZE,     /* bytes, a number or "10M", in [min, max]: uint64_t */
    F_CHOICE,   /* one name of arg (a fault_names): its value, an integer of 4 bytes */
    F_SET,      /* a name of arg (a fault_names) or a list of them: unsigned, bit 1u << index */
    F_OBJECT,   /* an object read by the table arg (a schema_table) into the struct at off */
    F_CUSTOM,   /* parse does it all */
} field_type;

typedef struct field field;

/* field_parse - an F_CUSTOM value v of the object at base; 0, or -1 after an error */
typedef int (*field_parse)(compiler *c, const cJSON *v, const char *path, const field *f, void *base);

/* field_check - a rule between the stored value and the rest of the object at base: the error, or NULL */
typedef const char *(*field_check)(const void *base);

/*
 * field - one key of a JSON object kind. A table of them, in the order the unknown-key error lists the
 * keys, is the whole schema of the object: schema_read() visits the rows in that order.
 */
struct field {
    const char *key;
    field_type type;
    long long min, max;  /* F_INT, F_SIZE: the range; F_TEXT, F_TEMPLATE: max is the length */
    size_t off, size;    /* where the value goes in the object filled in; size 0: checked, kept nowhere */
    const void *arg;     /* F_CHOICE, F_SET: the fault_names; F_OBJECT: the schema_table; F_CUSTOM: any */
    field_parse parse;   /* F_CUSTOM */
    field_check check;   /* after the value was read well: a further rule, reported at the key's path */
    const char *missing; /* the error when the key is absent; NULL: the key is optional */
};

/* schema_table - the rows of one object kind */
typedef struct schema_table {
    const field *fields;
    size_t n;
} schema_table;

#define SCHEMA_TABLE(rows)                     \
    {                                          \
        rows, sizeof(rows) / sizeof((rows)[0]) \
    }

/* FIELD_AT - the off and size of a member of the struct the table fills in */
#define FIELD_AT(type, member) .off = offsetof(type, member), .size = sizeof(((type *)0)->member)

/* FIELD_COMMENT - "comment": a note for readers, allowed in every object, kept nowhere */
#define FIELD_COMMENT                  \
    {                                  \
        "comment", F_TEXT, .max = 4096 \
    }

/*
 * schema_check - every key of obj must be one of fields[0..n) and appear once. Returns 0 when obj is an
 * object (whatever its keys), -1 (with an error) when it is not one.
 */
int schema_check(compiler *c, const cJSON *obj, const char *path, const field *fields, size_t n);

/* schema_read - each field of fields[0..n) that obj holds, read into base; errors for missing ones */
void schema_read(compiler *c, const cJSON *obj, const char *path, const field *fields, size_t n, void *base);

/* schema_read_one - v as the value of f, into base; 0, or -1 after an error */
int schema_read_one(compiler *c, const cJSON *v, const char *path, const field *f, void *base);

/* schema_parse - schema_check, then schema_read when obj is an object; 0 or -1 as schema_check */
int schema_parse(compiler *c, const cJSON *obj, const char *path, const field *fields, size_t n, void *base);

#endif
