/*
 * config.c - the listeners' policies, and the parsers of setting values (the option table is in options.c).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const listener_names[] = {
#define LISTENER_NAME(e, name) name,
    FAULT_LISTENER_LIST(LISTENER_NAME)
#undef LISTENER_NAME
};

/* The three ports of a real provider (their addresses are the option table's defaults, options.c). */
static const listener_policy policies[LISTENER_COUNT] = {
    [LISTENER_SMTP] = {0, 1, 0, 0},
    [LISTENER_SUBMISSION] = {0, 1, 1, 1},
    [LISTENER_SMTPS] = {1, 0, 0, 1},
};

const char *config_listener_name(listener_kind kind)
{
    return listener_names[kind];
}

int config_listener_kind(const char *name)
{
    for (int i = 0; i < LISTENER_COUNT; i++)
        if (strcmp(listener_names[i], name) == 0)
            return i;
    return -1;
}

const listener_policy *config_listener_policy(listener_kind kind)
{
    return &policies[kind];
}

int config_add_admin(config *cfg, const char *text, char *err, size_t errsz)
{
    if (!cfg->admin_given) {
        cfg->admin_given = 1;
        cfg->nadmin = 0;
    }
    if (strcmp(text, "off") == 0) {
        cfg->nadmin = 0;
        return 0;
    }
    if (cfg->nadmin == CONFIG_ADMIN_MAX) {
        snprintf(err, errsz, "at most %d admin addresses", CONFIG_ADMIN_MAX);
        return -1;
    }
    admin_addr *a = &cfg->admin[cfg->nadmin];
    memset(a, 0, sizeof(*a));
    if (strncmp(text, "unix:", 5) == 0) {
        if (text[5] == '\0' || strlen(text + 5) >= sizeof(a->unix_path)) {
            snprintf(err, errsz, "'%s' is not unix:PATH (at most %zu bytes)", text, sizeof(a->unix_path) - 1);
            return -1;
        }
        snprintf(a->unix_path, sizeof(a->unix_path), "%s", text + 5);
    } else if (config_parse_addr(text, &a->tcp, err, errsz) != 0) {
        return -1;
    }
    cfg->nadmin++;
    return 0;
}

int config_add_user(config *cfg, const char *spec, char *err, size_t errsz)
{
    const char *colon = strchr(spec, ':');
    if (colon == NULL || colon == spec) {
        snprintf(err, errsz, "'%s' is not NAME:PASSWORD", spec);
        return -1;
    }
    if (!cfg->users_given) {
        cfg->users_given = 1;
        config_free(cfg);
    }
    const char **names = realloc(cfg->user_names, (cfg->nusers + 1) * sizeof(*names));
    if (names != NULL)
        cfg->user_names = names;
    const char **pws = realloc(cfg->user_passwords, (cfg->nusers + 1) * sizeof(*pws));
    if (pws != NULL)
        cfg->user_passwords = pws;
    char *name = strndup(spec, (size_t)(colon - spec)), *pw = strdup(colon + 1);
    if (names == NULL || pws == NULL || name == NULL || pw == NULL) {
        free(name);
        free(pw);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    cfg->user_names[cfg->nusers] = name;
    cfg->user_passwords[cfg->nusers] = pw;
    cfg->nusers++;
    return 0;
}

void config_free(config *cfg)
{
    for (size_t i = 0; i < cfg->nusers; i++) {
        free((char *)cfg->user_names[i]);
        free((char *)cfg->user_passwords[i]);
    }
    free(cfg->user_names);
    free(cfg->user_passwords);
    cfg->user_names = cfg->user_passwords = NULL;
    cfg->nusers = 0;
}

int config_parse_addr(const char *text, listen_addr *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(text, "off") == 0)
        return 0;
    const char *colon;
    char host[CONFIG_HOST_MAX];
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errsz, "'%s' is not [IPV6]:PORT", text);
            return -1;
        }
        hlen = (size_t)(close - text - 1);
        if (hlen >= sizeof(host))
            goto bad;
        memcpy(host, text + 1, hlen);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            goto bad;
        hlen = (size_t)(colon - text);
        if (hlen >= sizeof(host))
            goto bad;
        memcpy(host, text, hlen);
    }
    host[hlen] = '\0';
    if (strcmp(host, "localhost") == 0 || hlen == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    else if (strcmp(host, "*") == 0)
        snprintf(host, sizeof(host), "0.0.0.0");

    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1) {
        snprintf(err, errsz, "'%s' is not a numeric IPv4 or IPv6 address", host);
        return -1;
    }
    uint64_t port;
    if (config_parse_u64(colon + 1, 0, 65535, &port) != 0 || strpbrk(colon + 1, "KMGkmg") != NULL) {
        snprintf(err, errsz, "'%s' is not a port number (0-65535)", colon + 1);
        return -1;
    }
    out->enabled = 1;
    snprintf(out->host, sizeof(out->host), "%s", host);
    out->port = (int)port;
    return 0;
bad:
    snprintf(err, errsz, "'%s' is not HOST:PORT, [IPV6]:PORT or off", text);
    return -1;
}

int config_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift != 0)
        end++;
    if (*end != '\0' || (shift != 0 && v > (UINT64_MAX >> shift)))
        return -1;
    v <<= shift;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int config_host_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}
