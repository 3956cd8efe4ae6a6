/*
 * sasl.h - the server side of SMTP AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195) and
 * XOAUTH2 (Google's and Microsoft's OAuth 2.0 bearer mechanism), checked against a list of users.
 *
 * An exchange is a small state machine: sasl_start() takes the mechanism and the optional initial
 * response, sasl_step() each client line after a 334 challenge; both say what to answer. No I/O: base64
 * and HMAC-MD5 come from wolfCrypt. With no users configured every credential is accepted (documented).
 */
#ifndef SMTPFAULT_SASL_H
#define SMTPFAULT_SASL_H

#include <stddef.h>

#include "server_vocab.h"

#define SASL_NAME_MAX      256 /* user names we keep; longer ones are refused */
#define SASL_CHALLENGE_MAX 512 /* base64 of a challenge */

typedef enum sasl_mech {
#define SASL_MECH_ENUM(e, name, clear) SASL_##e,
    FAULT_AUTH_MECH_LIST(SASL_MECH_ENUM)
#undef SASL_MECH_ENUM
        SASL_MECH_COUNT
} sasl_mech;

#define SASL_ALL_MECHS ((1u << SASL_MECH_COUNT) - 1)

/* sasl_users - the accounts credentials are checked against (a view: the caller owns the strings) */
typedef struct sasl_users {
    const char *const *names;
    const char *const *passwords; /* for XOAUTH2: the bearer token */
    size_t n;
} sasl_users;

/* sasl_mech_name - "CRAM-MD5"; sasl_mech_parse - case-insensitive reverse, or -1 */
const char *sasl_mech_name(sasl_mech m);
int sasl_mech_parse(const char *name, size_t len);

/* sasl_mech_is_plaintext - 1 when the mechanism reveals the password to an eavesdropper */
int sasl_mech_is_plaintext(sasl_mech m);

typedef enum sasl_result {
    SASL_CHALLENGE,  /* send "334 <out>" and wait for the next line */
    SASL_OK,         /* authenticated as sasl_exchange.user */
    SASL_BAD_CREDS,  /* 535 5.7.8 */
    SASL_BAD_BASE64, /* 501 5.5.2: the response is not base64 */
    SASL_BAD_SYNTAX, /* 501 5.5.2: base64, but not what the mechanism expects */
    SASL_CANCELLED,  /* 501 5.0.0: the client sent "*" */
} sasl_result;

typedef struct sasl_exchange {
    sasl_mech mech;
    int step;
    int failed;                         /* XOAUTH2: an error challenge was sent; the next line ends it */
    char user[SASL_NAME_MAX + 1];       /* the authentication identity, once known */
    char challenge[SASL_CHALLENGE_MAX]; /* CRAM-MD5: the challenge sent, decoded */
} sasl_exchange;

typedef struct sasl_context {
    const sasl_users *users;
    const char *hostname;     /* in the CRAM-MD5 challenge */
    unsigned long long nonce; /* unique per exchange (the session id), for the CRAM-MD5 challenge */
} sasl_context;

/*
 * sasl_start - begin with mechanism m and the initial response (NULL when the AUTH command had none;
 * "=" is the empty response of RFC 4954 section 4). out receives the base64 challenge for SASL_CHALLENGE.
 */
sasl_result sasl_start(sasl_exchange *x, sasl_mech m, const char *initial, size_t len,
                       const sasl_context *ctx, char *out, size_t outsz);

/* sasl_step - the client's answer to a challenge */
sasl_result sasl_step(sasl_exchange *x, const char *line, size_t len, const sasl_context *ctx, char *out,
                      size_t outsz);

#endif
