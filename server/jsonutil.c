/*
 * jsonutil.c - small cJSON helpers.
 */
#include "jsonutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "utf8.h"

void format_wall(int64_t ms, char *out, size_t outsz)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, outsz, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outsz - n, ".%03dZ", (int)(ms % 1000));
}

void json_add_time(cJSON *o, const char *key, int64_t ms)
{
    char text[40];
    format_wall(ms, text, sizeof(text));
    cJSON_AddStringToObject(o, key, text);
}

void json_add_string_or_null(cJSON *o, const char *key, const char *value)
{
    if (value != NULL)
        cJSON_AddStringToObject(o, key, value);
    else
        cJSON_AddNullToObject(o, key);
}

void json_add_tls(cJSON *o, const char *version, const char *cipher)
{
    if (version == NULL) {
        cJSON_AddNullToObject(o, "tls");
        return;
    }
    cJSON *t = cJSON_AddObjectToObject(o, "tls");
    cJSON_AddStringToObject(t, "version", version);
    cJSON_AddStringToObject(t, "cipher", cipher ? cipher : "");
}

char *json_print(const cJSON *item)
{
    char *text = cJSON_PrintUnformatted(item);
    if (text == NULL)
        return NULL;
    size_t len = strlen(text);
    if (utf8_valid(text, len))
        return text;
    /* cJSON prints a string's bytes as they are; a byte that starts no UTF-8 sequence is never a quote, a
     * brace or a backslash, so replacing it keeps the JSON structure. Each becomes 3 bytes at most. */
    static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
    char *out = cJSON_malloc(len * 3 + 1);
    if (out == NULL) {
        cJSON_free(text);
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)text;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence_len(p + i, len - i);
        if (n == 0) {
            memcpy(out + o, replacement, 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    cJSON_free(text);
    return out;
}

const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

double json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}
