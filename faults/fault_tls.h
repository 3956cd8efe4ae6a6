/*
 * fault_tls.h - the TLS vocabulary of fault profiles, as X-macro lists: the server certificates a profile
 * can present, the protocol versions it can allow and the alerts a handshake fault can send.
 *
 * Pure names and numbers: the profile compiler validates against these lists, and the TLS layer
 * (server/tls.c, server/certs.c) expands the same lists, so a name means the same thing everywhere.
 */
#ifndef SMTPFAULT_FAULT_TLS_H
#define SMTPFAULT_FAULT_TLS_H

/* X(ENUM, "profile name", "file stem", "what is wrong with it") - the server certificates */
#define FAULT_CERT_LIST(X)                                                                               \
    X(VALID, "valid", "server", "signed by ca.pem, names the host: verification succeeds")               \
    X(EXPIRED, "expired", "expired", "signed by ca.pem, but its validity ended in 2020")                 \
    X(WRONG_HOST, "wrong_host", "wrong-host", "signed by ca.pem, but issued to wrong-host.invalid only") \
    X(SELF_SIGNED, "self_signed", "self-signed", "names the host, but signed by its own key")            \
    X(UNTRUSTED, "untrusted", "untrusted", "names the host, but signed by untrusted-ca.pem, not ca.pem")

typedef enum cert_kind {
#define FAULT_CERT_ENUM(e, name, stem, what) CERT_##e,
    FAULT_CERT_LIST(FAULT_CERT_ENUM)
#undef FAULT_CERT_ENUM
        CERT_KIND_COUNT
} cert_kind;

/* X(ENUM, "profile name") - TLS protocol versions, oldest first (1.0 is not built into Debian's wolfSSL) */
#define FAULT_TLS_VERSION_LIST(X) \
    X(1_1, "1.1")                 \
    X(1_2, "1.2")                 \
    X(1_3, "1.3")

typedef enum tls_version {
#define FAULT_TLS_VERSION_ENUM(e, name) TLS_V##e,
    FAULT_TLS_VERSION_LIST(FAULT_TLS_VERSION_ENUM)
#undef FAULT_TLS_VERSION_ENUM
        TLS_VERSION_COUNT
} tls_version;

/* X(profile name, description number) - TLS alerts (RFC 8446 section 6, RFC 5246 section 7.2) */
#define FAULT_TLS_ALERT_LIST(X)  \
    X(unexpected_message, 10)    \
    X(bad_record_mac, 20)        \
    X(handshake_failure, 40)     \
    X(bad_certificate, 42)       \
    X(certificate_expired, 45)   \
    X(certificate_unknown, 46)   \
    X(illegal_parameter, 47)     \
    X(unknown_ca, 48)            \
    X(access_denied, 49)         \
    X(decode_error, 50)          \
    X(decrypt_error, 51)         \
    X(protocol_version, 70)      \
    X(insufficient_security, 71) \
    X(internal_error, 80)        \
    X(user_canceled, 90)         \
    X(unrecognized_name, 112)

#endif
