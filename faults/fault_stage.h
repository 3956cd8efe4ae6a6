/*
 * fault_stage.h - the stages of a session, as an X-macro list (the listeners and SASL mechanisms are the
 * server's: server_vocab.h).
 *
 * A stage names a point in a session where the server decides what to do next: the session's command table
 * tags each command with one, the transcript names it, and the fault engine matches profile rules against it.
 * Every consumer expands this one list, so names cannot drift apart.
 */
#ifndef SMTPFAULT_FAULT_STAGE_H
#define SMTPFAULT_FAULT_STAGE_H

/* X(ENUM_SUFFIX, "profile name") */
#define FAULT_STAGE_LIST(X)           \
    X(CONNECT, "connect")             \
    X(GREETING, "greeting")           \
    X(EHLO, "ehlo")                   \
    X(STARTTLS, "starttls")           \
    X(TLS_HANDSHAKE, "tls_handshake") \
    X(AUTH, "auth")                   \
    X(MAIL, "mail")                   \
    X(RCPT, "rcpt")                   \
    X(DATA, "data")                   \
    X(DATA_END, "data_end")           \
    X(RSET, "rset")                   \
    X(VRFY, "vrfy")                   \
    X(NOOP, "noop")                   \
    X(HELP, "help")                   \
    X(QUIT, "quit")                   \
    X(UNKNOWN, "unknown")

typedef enum fault_stage {
#define FAULT_STAGE_ENUM(e, s) FAULT_STAGE_##e,
    FAULT_STAGE_LIST(FAULT_STAGE_ENUM)
#undef FAULT_STAGE_ENUM
        FAULT_STAGE_COUNT
} fault_stage;

/* fault_stage_name - the profile name of a stage ("rcpt"), or "?" for a value out of range */
static inline const char *fault_stage_name(fault_stage stage)
{
    static const char *const names[] = {
#define FAULT_STAGE_NAME(e, s) s,
        FAULT_STAGE_LIST(FAULT_STAGE_NAME)
#undef FAULT_STAGE_NAME
    };
    return (unsigned)stage < FAULT_STAGE_COUNT ? names[stage] : "?";
}

#endif
