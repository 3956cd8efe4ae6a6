/*
 * jsonutil.c - small cJSON helpers.
 */
#include "jsonutil.h"

#include <stdio.h>
#include <time.h>

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
