/*
 * fault.h - the fault engine: compiled profiles and the decision at every stage of a session.
 *
 * Pure C: no libuv, no wolfSSL, no sockets, no clock of its own (the caller passes the time). A profile is
 * compiled once from JSON into an immutable, reference-counted fault_profile (fault_profile.c). Loading
 * it makes a fault_run: the profile plus the state that changes while it is in force (rule counters,
 * greylist, rate-limit windows), also reference-counted. Each connection holds a fault_conn on the run it
 * started under, so a session keeps its profile when another one is loaded. fault_decide() returns what to
 * do; the server does it.
 */
#ifndef SMTPFAULT_FAULT_H
#define SMTPFAULT_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "fault_stage.h"
#include "fault_tls.h"

#define FAULT_REPLY_MAX      2048 /* one formatted reply, every line with its CRLF */
#define FAULT_REPLY_LINE_MAX 512  /* one reply line with its CRLF (RFC 5321 4.5.3.1.5) */
#define FAULT_WHY_MAX        160  /* "rule 3 (slow-rcpt)", "magic address rcpt550@x.test", ... */
#define FAULT_OWN_REPLY_MAX  512  /* a reply the engine makes up itself (greylist, magic address) */

/* X(ENUM, "name") - the actions, as logs, stats and docs name them */
#define FAULT_ACTION_LIST(X)          \
    X(DELAY, "delay")                 \
    X(REPLY, "reply")                 \
    X(RAW, "raw")                     \
    X(TRUNCATE, "truncate")           \
    X(DRIP, "drip")                   \
    X(CLOSE, "close")                 \
    X(HANG, "hang")                   \
    X(DISCARD, "discard")             \
    X(GREYLIST, "greylist")           \
    X(TLS_ALERT, "tls_alert")         \
    X(TLS_PLAINTEXT, "tls_plaintext") \
    X(CERTIFICATE, "certificate")     \
    X(VERSIONS, "versions")           \
    X(REFUSE, "refuse")               \
    X(BLACKHOLE, "blackhole")

typedef enum fault_action_kind {
#define FAULT_ACTION_ENUM(e, s) FAULT_ACTION_##e,
    FAULT_ACTION_LIST(FAULT_ACTION_ENUM)
#undef FAULT_ACTION_ENUM
        FAULT_ACTION_COUNT
} fault_action_kind;

const char *fault_action_name(fault_action_kind kind);

/* Names of the TLS vocabulary (fault_tls.h); each _parse returns the value, or -1 for an unknown name. */
const char *fault_cert_name(int kind);
int fault_cert_parse(const char *name);
const char *fault_tls_version_name(int version);
int fault_tls_version_parse(const char *name);
const char *fault_tls_alert_name(int description);
int fault_tls_alert_parse(const char *name);

typedef enum fault_close {
    FAULT_CLOSE_NONE,
    FAULT_CLOSE_FIN, /* "close": an orderly TCP close */
    FAULT_CLOSE_RST, /* "reset": an RST, as a crashed server or a firewall sends */
} fault_close;

/*
 * fault_action - what a rule's "do" says, compiled. A reply is stored formatted (every line with its code
 * and CRLF); raw bytes are sent as they are. Fields that do not apply are zero.
 */
typedef struct fault_action {
    unsigned kinds;    /* 1u << fault_action_kind for each action present */
    uint32_t delay_ms; /* wait this long before acting */
    const char *reply; /* formatted reply, or NULL */
    size_t reply_len;
    int reply_code;  /* its code (421 closes the connection, as RFC 5321 section 3.8 says) */
    const char *raw; /* bytes to send instead of a reply, or NULL */
    size_t raw_len;
    uint32_t truncate;    /* send only this many bytes of the reply, then close (0: all) */
    uint32_t drip_bps;    /* send the reply at this many bytes per second (0: at once) */
    fault_close close;    /* after the reply, or instead of one */
    int hang;             /* never answer again; keep the connection open */
    int discard;          /* data_end: answer as usual, but do not keep the message */
    uint32_t greylist_ms; /* rcpt: 450 until the same client/sender/recipient retries after this long */
    int tls_alert;        /* tls_handshake: refuse the ClientHello with this alert (-1: none) */
    int tls_plaintext;    /* tls_handshake: answer in plain text instead of TLS */
    int certificate;      /* tls_handshake: cert_kind to present (-1: the profile's) */
    int tls_min, tls_max; /* tls_handshake: tls_version range (-1: the profile's) */
} fault_action;

/* X(name, "what it becomes") - placeholders replies, the banner and the EHLO text may hold: {rcpt} */
#define FAULT_PLACEHOLDER_LIST(X)         \
    X(client, "the client's IP address")  \
    X(sender, "the MAIL FROM address")    \
    X(rcpt, "the recipient of this RCPT") \
    X(helo, "the EHLO/HELO name")         \
    X(user, "the authenticated user")     \
    X(hostname, "the server's host name") \
    X(listener, "the listener's name")

typedef enum fault_placeholder {
#define FAULT_PLACEHOLDER_ENUM(name, what) FAULT_VAR_##name,
    FAULT_PLACEHOLDER_LIST(FAULT_PLACEHOLDER_ENUM)
#undef FAULT_PLACEHOLDER_ENUM
        FAULT_VAR_COUNT
} fault_placeholder;

/* fault_vars - the values placeholders become (NULL: empty) */
typedef struct fault_vars {
    const char *v[FAULT_VAR_COUNT];
} fault_vars;

/*
 * fault_check_placeholders - NULL when every '{' in text starts a known placeholder ("{rcpt}") or is "{{"
 * (a literal brace, as "}}" is); otherwise what is wrong, in a static string.
 */
const char *fault_check_placeholders(const char *text);

/*
 * fault_expand - text with its placeholders replaced, into out (cut to outsz, always NUL-terminated when
 * outsz > 0). Returns the whole length, as snprintf does: call with outsz 0 to size the buffer exactly.
 */
size_t fault_expand(const char *text, size_t len, const fault_vars *vars, char *out, size_t outsz);

/*
 * fault_fold_reply - a formatted reply (every line "CODE[ -]text" with its CRLF) whose lines longer than
 * FAULT_REPLY_LINE_MAX are split into continuation lines of the same code, each repeating the enhanced
 * status code, never inside a UTF-8 sequence. Returns the whole length, as fault_expand does.
 */
size_t fault_fold_reply(const char *in, size_t len, char *out, size_t outsz);

/* fault_addr - a client address, for CIDR conditions and per-client limits */
typedef struct fault_addr {
    int family; /* 4 or 6 */
    unsigned char bytes[16];
} fault_addr;

/* fault_addr_text - "127.0.0.1" or "::1" into out */
void fault_addr_text(const fault_addr *a, char *out, size_t outsz);

/* fault_facts - what the session knows when it asks; NULL fields are unknown yet */
typedef struct fault_facts {
    const char *helo;
    const char *sender;       /* MAIL FROM of the transaction ("" for <>) */
    const char *rcpt;         /* the recipient of this RCPT */
    const char *const *rcpts; /* the transaction's recipients (data, data_end) */
    size_t nrcpts;
    const char *user; /* authenticated user (auth: the one trying) */
    int authenticated;
    int tls;
    const char *verb; /* the command (unknown stage: what the client sent) */
} fault_facts;

/* fault_decision - the engine's answer: act == NULL means behave normally */
typedef struct fault_decision {
    const fault_action *act;
    int rule;                /* index of the rule that fired; -1 for a limit, greylist or magic address */
    char why[FAULT_WHY_MAX]; /* for the transcript: which rule or mechanism fired */
    fault_action own;        /* storage for actions the engine makes up (limits, magic, greylist) */
    char reply_buf[FAULT_OWN_REPLY_MAX];
} fault_decision;

/* -- profiles ------------------------------------------------------------------------------------------- */

typedef struct fault_profile fault_profile;

/* fault_errors - every problem found in a profile, each "PATH: what is wrong (what was expected)" */
typedef struct fault_errors {
    char **msgs;
    size_t n;
} fault_errors;

void fault_errors_free(fault_errors *e);

/*
 * fault_profile_compile - compile profile JSON. source names it in error messages (a file name, or
 * "profile"). NULL when it has errors, all of them in errs (which the caller frees).
 */
fault_profile *fault_profile_compile(const char *json, size_t len, const char *source, fault_errors *errs);

/* fault_profile_default - the profile in force when none is loaded: no rules, magic addresses on */
fault_profile *fault_profile_default(void);

fault_profile *fault_profile_ref(fault_profile *p);
void fault_profile_unref(fault_profile *p);

/* fault_settings - what a profile changes in the server's behaviour outside its rules */
typedef struct fault_settings {
    const char *name; /* "" for the default profile */
    const char *description;
    const char *hostname;  /* NULL: the server's */
    const char *greeting;  /* text after the host name in the 220 banner, NULL: the server's */
    const char *banner;    /* the whole text after "220 " (placeholders allowed), NULL: as above */
    const char *ehlo_text; /* the first line of the EHLO reply after "250-" (placeholders), NULL: host name */
    uint64_t size;         /* SIZE limit, 0: the server's */
    size_t max_recipients; /* 0: the server's */
    int magic;             /* magic addresses: 1 on, 0 off, -1 as the server says (--no-magic) */
    unsigned ehlo_remove;  /* bits of fault_ehlo_cap the EHLO reply leaves out */
    unsigned auth_mechs;   /* bits of the SASL mechanisms offered, 0: the server's */
    int has_users;         /* users below replace the server's */
    const char *const *user_names;
    const char *const *user_passwords;
    size_t nusers;
    int certificate;      /* cert_kind, -1: the valid one */
    int tls_min, tls_max; /* tls_version range, -1: the server's */
    uint64_t seed;
} fault_settings;

const fault_settings *fault_profile_settings(const fault_profile *p);

/* fault_profile_nrules - rules in the profile; fault_profile_rule_name - a rule's label ("" when unnamed) */
size_t fault_profile_nrules(const fault_profile *p);
const char *fault_profile_rule_name(const fault_profile *p, size_t i);

#define FAULT_SUMMARY_SETTINGS_MAX  16
#define FAULT_SUMMARY_ALL_LISTENERS 0x7u /* one bit per FAULT_LISTENER_LIST entry */

/* fault_summary - what a profile touches: where its rules and limits act, and the settings it changes */
typedef struct fault_summary {
    unsigned stages;    /* 1u << fault_stage */
    unsigned listeners; /* 1u << position in FAULT_LISTENER_LIST; a rule that names none sets all */
    const char *settings[FAULT_SUMMARY_SETTINGS_MAX]; /* profile keys ("server.users"), static strings */
    size_t nsettings;
} fault_summary;

/* fault_profile_summarize - the summary of p (fault_summary.c) */
void fault_profile_summarize(const fault_profile *p, fault_summary *out);

/* fault_profile_source - the JSON the profile was compiled from, as given */
const char *fault_profile_source(const fault_profile *p);

/* X(ENUM, "EHLO keyword") - capabilities a profile can remove from the EHLO reply */
#define FAULT_EHLO_CAP_LIST(X)                    \
    X(PIPELINING, "PIPELINING")                   \
    X(SIZE, "SIZE")                               \
    X(STARTTLS, "STARTTLS")                       \
    X(AUTH, "AUTH")                               \
    X(ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES") \
    X(8BITMIME, "8BITMIME")                       \
    X(DSN, "DSN")                                 \
    X(SMTPUTF8, "SMTPUTF8")                       \
    X(CHUNKING, "CHUNKING")                       \
    X(BINARYMIME, "BINARYMIME")                   \
    X(HELP, "HELP")

typedef enum fault_ehlo_cap {
#define FAULT_EHLO_CAP_ENUM(e, s) FAULT_EHLO_##e,
    FAULT_EHLO_CAP_LIST(FAULT_EHLO_CAP_ENUM)
#undef FAULT_EHLO_CAP_ENUM
        FAULT_EHLO_COUNT
} fault_ehlo_cap;

const char *fault_ehlo_cap_name(fault_ehlo_cap cap);

/* -- runs and connections ----------------------------------------------------------------------------- */

typedef struct fault_run fault_run;
typedef struct fault_conn fault_conn;

/*
 * fault_run_new - profile p put in force at now_ms (a reference to p is taken); magic says whether magic
 * addresses work when the profile does not say. NULL when out of memory.
 */
fault_run *fault_run_new(fault_profile *p, int64_t now_ms, int magic);
fault_run *fault_run_ref(fault_run *r);
void fault_run_unref(fault_run *r);

const fault_profile *fault_run_profile(const fault_run *r);

/* fault_stats - counters for the admin socket, filled in by fault_run_stats() */
typedef struct fault_stats {
    uint64_t fired_total;
    uint64_t fired_by_stage[FAULT_STAGE_COUNT];
    const uint64_t *fired_by_rule; /* fault_profile_nrules() entries */
    uint64_t limits, greylisted, magic;
    uint64_t connections;
} fault_stats;

void fault_run_stats(const fault_run *r, fault_stats *out);

/*
 * fault_run_listener_mode - for listener at now_ms: FAULT_ACTION_REFUSE, FAULT_ACTION_BLACKHOLE, or -1
 * (accept normally). *next_change_ms is set to when the answer may change next (INT64_MAX: never).
 */
int fault_run_listener_mode(const fault_run *r, const char *listener, int64_t now_ms,
                            int64_t *next_change_ms);

/*
 * fault_conn_new - a connection from addr on listener starts under run (a reference is taken); it counts
 * towards per-client limits until fault_conn_free. NULL when out of memory.
 */
fault_conn *fault_conn_new(fault_run *run, const char *listener, const fault_addr *addr);
void fault_conn_free(fault_conn *fc);

fault_run *fault_conn_run(const fault_conn *fc);

/* fault_conn_message_accepted - a message was accepted on this connection at now_ms (for rate limits) */
void fault_conn_message_accepted(fault_conn *fc, int64_t now_ms);

/* fault_conn_wants - 0 when nothing can fire at stage under this connection's profile (a fast path) */
int fault_conn_wants(const fault_conn *fc, fault_stage stage);

/* fault_decide - what to do at stage, given the facts; see fault_decision */
void fault_decide(fault_conn *fc, fault_stage stage, const fault_facts *facts, int64_t now_ms,
                  fault_decision *d);

/* fault_decision_describe - "reply 550 5.1.1 User unknown", "delay 2000 ms, then close", ... */
void fault_decision_describe(const fault_decision *d, char *out, size_t outsz);

#endif
