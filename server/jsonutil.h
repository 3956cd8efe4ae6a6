/*
 * jsonutil.h - small cJSON helpers the envelope, the transcripts and the admin socket share.
 */
#ifndef SMTPFAULT_JSONUTIL_H
#define SMTPFAULT_JSONUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

/* format_wall - wall-clock milliseconds as "2026-12-03T16:41:00.983Z" */
void format_wall(int64_t ms, char *out, size_t outsz);

/* json_add_time - key: the wall-clock time ms, formatted as above */
void json_add_time(cJSON *o, const char *key, int64_t ms);

/* json_add_string_or_null - key: value, or null when value is NULL */
void json_add_string_or_null(cJSON *o, const char *key, const char *value);

/* json_add_tls - "tls": {"version", "cipher"}, or null when version is NULL */
void json_add_tls(cJSON *o, const char *version, const char *cipher);

/*
 * json_print - item as one line of JSON (cJSON_PrintUnformatted), in UTF-8 whatever bytes its strings hold:
 * a byte that starts no well-formed sequence becomes U+FFFD. Free with cJSON_free; NULL when out of memory.
 */
char *json_print(const cJSON *item);

/* json_str, json_num - a member of o read leniently: "" or 0 when it is absent or of another type */
const char *json_str(const cJSON *o, const char *key);
double json_num(const cJSON *o, const char *key);

#endif
