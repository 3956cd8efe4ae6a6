/*
 * fault_stage.h - the names of a session's parts, as X-macro lists: stages, listeners, SASL mechanisms.
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

/* X(ENUM_SUFFIX, "name") - the listeners, as profiles, logs and the ports file name them */
#define FAULT_LISTENER_LIST(X)  \
    X(SMTP, "smtp")             \
    X(SUBMISSION, "submission") \
    X(SMTPS, "smtps")

/* X(ENUM_SUFFIX, "name", sends the password in the clear) - SASL mechanisms, in the order EHLO lists them */
#define FAULT_AUTH_MECH_LIST(X) \
    X(PLAIN, "PLAIN", 1)        \
    X(LOGIN, "LOGIN", 1)        \
    X(CRAM_MD5, "CRAM-MD5", 0)  \
    X(XOAUTH2, "XOAUTH2", 1)

#endif
