/*
 * config.h - the server's settings, with their defaults and the parsers for their command-line forms.
 */
#ifndef SMTPFAULT_CONFIG_H
#define SMTPFAULT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "server_vocab.h"
#include "log.h"

#define CONFIG_HOST_MAX 64

typedef struct listen_addr {
    int enabled;
    char host[CONFIG_HOST_MAX]; /* numeric IPv4 or IPv6, no brackets */
    int port;                   /* 0: the kernel picks a free port */
} listen_addr;

/* The listeners, in the order they are opened and reported (names in faults/server_vocab.h). */
typedef enum listener_kind {
#define LISTENER_ENUM(e, name) LISTENER_##e,
    FAULT_LISTENER_LIST(LISTENER_ENUM)
#undef LISTENER_ENUM
        LISTENER_COUNT
} listener_kind;

/* listener_policy - what each kind of listener does, as real providers' ports do */
typedef struct listener_policy {
    int implicit_tls;  /* TLS from the first byte (RFC 8314) */
    int starttls;      /* STARTTLS offered (RFC 3207) */
    int tls_required;  /* MAIL and plaintext AUTH only after STARTTLS (RFC 6409 practice) */
    int auth_required; /* MAIL only after AUTH: 530 5.7.0 */
} listener_policy;

/* config_listener_policy - the policy of a listener kind */
const listener_policy *config_listener_policy(listener_kind kind);

#define CONFIG_ADMIN_MAX      4   /* admin addresses (TCP and unix sockets) */
#define CONFIG_ADMIN_PATH_MAX 108 /* sun_path */

/* admin_addr - a TCP address, or a unix socket when unix_path is set */
typedef struct admin_addr {
    listen_addr tcp;
    char unix_path[CONFIG_ADMIN_PATH_MAX];
} admin_addr;

typedef struct config {
    listen_addr listen[LISTENER_COUNT];
    char hostname[256];
    uint64_t max_message_size;
    size_t max_recipients;
    unsigned max_errors;
    unsigned idle_timeout_s;
    unsigned drain_timeout_s;
    uint64_t max_inflight_bytes; /* message content held by all sessions together */
    size_t max_connections;      /* live SMTP connections (fewer when RLIMIT_NOFILE says so) */
    size_t store_max_messages;
    uint64_t store_max_bytes;
    const char *store_dir;            /* NULL: memory only */
    const char *ports_file;           /* NULL: none */
    const char *cert_file, *key_file; /* the user's own certificate for "valid", PEM */
    const char *certs_dir;            /* load the test PKI from here, or write a new one here */
    int no_tls;                       /* no STARTTLS, no implicit-TLS listener */
    const char **user_names;          /* --user NAME:PASSWORD, in order (strings owned by the config) */
    const char **user_passwords;
    size_t nusers;
    int users_given;     /* --user was given: the first one replaces what the environment said */
    const char *profile; /* --profile FILE */
    admin_addr admin[CONFIG_ADMIN_MAX];
    size_t nadmin;
    int admin_given;         /* --admin was given: the default address is replaced */
    int admin_remote;        /* a non-loopback admin address is allowed */
    const char *admin_token; /* required in every admin request when set */
    int magic;               /* magic addresses, unless a profile says otherwise (--no-magic: 0) */
    /* --admin-allow-paths: colon-separated directories profile.load may also read, or NULL */
    const char *admin_allow_paths;
    size_t max_scopes;                        /* scopes alive at once (scope.create past it: an error) */
    unsigned scope_port_low, scope_port_high; /* --scope-ports LOW-HIGH; 0: ephemeral ports */
    log_format log_format;
    log_level log_level;
} config;

/* config_defaults - every setting at its documented default: the option table's (options.c) */
void config_defaults(config *cfg);

/* config_listener_name - "smtp", "submission", ... */
const char *config_listener_name(listener_kind kind);

/* config_listener_kind - the listener_kind of a name, or -1 */
int config_listener_kind(const char *name);

/*
 * config_parse_addr - "HOST:PORT", "[IPV6]:PORT", "localhost:PORT" or "off". Returns 0, or -1 with a
 * reason in err.
 */
int config_parse_addr(const char *text, listen_addr *out, char *err, size_t errsz);

/* config_add_admin - "HOST:PORT", "unix:/path" or "off" (the first --admin replaces the default); 0 or -1 */
int config_add_admin(config *cfg, const char *text, char *err, size_t errsz);

/* config_add_user - "NAME:PASSWORD" (split at the first colon); 0, or -1 with a reason in err */
int config_add_user(config *cfg, const char *spec, char *err, size_t errsz);

/* config_free - what config_add_user allocated */
void config_free(config *cfg);

/* config_parse_u64 - a decimal number within [min, max], with an optional K/M/G (binary) suffix */
int config_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* config_host_is_loopback - a numeric host in 127.0.0.0/8, or ::1 */
int config_host_is_loopback(const char *host);

#endif
