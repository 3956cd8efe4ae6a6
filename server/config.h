/*
 * config.h - the server's settings, with their defaults and the parsers for their command-line forms.
 */
#ifndef SMTPFAULT_CONFIG_H
#define SMTPFAULT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CONFIG_HOST_MAX 64

typedef struct listen_addr {
    int enabled;
    char host[CONFIG_HOST_MAX]; /* numeric IPv4 or IPv6, no brackets */
    int port;                   /* 0: the kernel picks a free port */
} listen_addr;

/* The listeners, in the order they are opened and reported. */
#define LISTENER_LIST(X)                                                                                     \
    X(SMTP, "smtp", "127.0.0.1:2525")                                                                        \
    X(SUBMISSION, "submission", "off")

typedef enum listener_kind {
#define LISTENER_ENUM(e, name, def) LISTENER_##e,
    LISTENER_LIST(LISTENER_ENUM)
#undef LISTENER_ENUM
        LISTENER_COUNT
} listener_kind;

typedef struct config {
    listen_addr listen[LISTENER_COUNT];
    char hostname[256];
    uint64_t max_message_size;
    size_t max_recipients;
    unsigned max_errors;
    unsigned idle_timeout_s;
    unsigned drain_timeout_s;
    size_t store_max_messages;
    uint64_t store_max_bytes;
    const char *store_dir;  /* NULL: memory only */
    const char *ports_file; /* NULL: none */
    log_format log_format;
    log_level log_level;
} config;

/* config_defaults - every setting at its documented default */
void config_defaults(config *cfg);

/* config_listener_name - "smtp", "submission", ... */
const char *config_listener_name(listener_kind kind);

/*
 * config_parse_addr - "HOST:PORT", "[IPV6]:PORT", "localhost:PORT" or "off". Returns 0, or -1 with a
 * reason in err.
 */
int config_parse_addr(const char *text, listen_addr *out, char *err, size_t errsz);

/* config_parse_u64 - a decimal number within [min, max], with an optional K/M/G (binary) suffix */
int config_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);

#endif
