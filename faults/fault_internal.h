/*
 * fault_internal.h - what the modules of faults/ share: the compiled form of a profile (built by
 * fault_profile.c, read by fault_engine.c and fault_summary.c) and the text utilities of fault_text.c.
 * Not for use outside faults/.
 */
#ifndef SMTPFAULT_FAULT_INTERNAL_H
#define SMTPFAULT_FAULT_INTERNAL_H

#include "fault.h"
#include "fault_arena.h"

#define FAULT_NO_TIME INT64_MIN

typedef struct fault_globs {
    const char **v; /* fnmatch patterns, matched without regard to case */
    size_t n;
} fault_globs;

typedef struct fault_cidr {
    fault_addr net;
    int prefix; /* bits */
} fault_cidr;

typedef struct fault_rule {
    const char *name; /* "" when unnamed */
    unsigned stages;  /* 1u << fault_stage */
    const char **listeners;
    size_t nlisteners;
    fault_cidr *clients;
    size_t nclients;
    fault_globs helo, sender, rcpt, user;
    int tls;                    /* -1: either, 0: without TLS, 1: with TLS */
    int auth;                   /* -1: either, 0: not authenticated, 1: authenticated */
    uint32_t nth, every, times; /* 0: not set */
    int per_connection;         /* count matches per connection, not per server */
    double probability;         /* < 0: not set */
    int64_t after_ms, until_ms; /* since the profile was loaded; FAULT_NO_TIME: not set */
    fault_action act;
} fault_rule;

/* fault_limit - a provider-style rate limit and the reply given past it */
typedef struct fault_limit {
    uint32_t max;   /* 0: no limit */
    fault_stage at; /* where a message limit is checked (mail by default) */
    int per_server; /* messages_per_minute: counted for the whole server, not per client address */
    fault_action act;
} fault_limit;

struct fault_profile {
    unsigned refs;
    fault_arena *arena; /* every allocation of the compiled profile */
    fault_settings settings;
    fault_rule *rules;
    size_t nrules;
    fault_limit conns_per_client, msgs_per_conn, msgs_per_minute;
    char *source;
};

/*
 * fault_format_reply - lines[0..n) as an SMTP reply: code on every line, '-' after it on all but the last
 * (RFC 5321 section 4.2.1), CRLF after each. The first line must start with a code 200-599; later lines may
 * repeat it or not. Returns the length, or -1 with a reason in err.
 */
int fault_format_reply(const char *const *lines, size_t n, char *out, size_t outsz, int *code, char *err,
                       size_t errsz);

/* fault_parse_addr - a numeric IPv4 or IPv6 address; 0 or -1 */
int fault_parse_addr(const char *text, fault_addr *out);

#endif
