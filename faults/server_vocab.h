/*
 * server_vocab.h - the server's own vocabulary: its listeners and its SASL mechanisms, as X-macro lists.
 *
 * Owned by the server (server/config.h opens the listeners, server/sasl.c implements the mechanisms):
 * change them there first. The file lives in faults/ because the profile compiler checks a profile's
 * "listener" and "auth_mechanisms" values against these names, and the fault library must not depend on
 * server/. Nothing else of the engine uses them.
 */
#ifndef SMTPFAULT_SERVER_VOCAB_H
#define SMTPFAULT_SERVER_VOCAB_H

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
