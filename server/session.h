/*
 * session.h - one SMTP session: the ESMTP state machine, independent of sockets and the event loop.
 *
 * The connection feeds the session the bytes it reads and gets replies back through session_host. The
 * session never blocks and never owns a socket, which lets the unit tests and fuzzers drive the real
 * protocol code over a fake transport. Implements RFC 5321 with PIPELINING (RFC 2920), SIZE (RFC 1870),
 * ENHANCEDSTATUSCODES (RFC 2034, 3463), 8BITMIME (RFC 6152), CHUNKING and BINARYMIME (RFC 3030),
 * SMTPUTF8 (RFC 6531) and the DSN parameters of RFC 3461 (parsed and validated, not acted on).
 */
#ifndef SMTPFAULT_SESSION_H
#define SMTPFAULT_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct session_config {
    const char *hostname;      /* our name in the greeting, EHLO and 221/421 replies */
    uint64_t max_message_size; /* SIZE advertised and enforced (552 5.3.4) */
    size_t max_recipients;     /* RCPTs per transaction; RFC 5321 4.5.3.1.8 asks for at least 100 */
    unsigned max_errors;       /* bad commands before 421 4.7.0 and close */
} session_config;

/*
 * session_host - what the session needs from its connection. Every call is made from inside a session_*
 * function; output is buffered by the host and written after that function returns.
 */
typedef struct session_host {
    /* send - queue reply bytes for the client */
    void (*send)(void *ctx, const char *data, size_t len);
    /* close - close the connection once the queued output is written */
    void (*close)(void *ctx, const char *reason);
    /*
     * commit - keep an accepted message. The host takes the reference it is given and must answer with
     * session_commit_done(), from inside this call or later; the session reads no input until then.
     */
    void (*commit)(void *ctx, store_msg *msg);
} session_host;

typedef struct session session;

typedef struct session_info {
    uint64_t id;          /* transcript id, unique in the process */
    const char *client;   /* "addr:port" of the client */
    const char *listener; /* listener name: "smtp", "submission", ... */
} session_info;

/* session_new - a session in its initial state, or NULL when out of memory. Call session_start next. */
session *session_new(const session_config *cfg, const session_host *host, void *ctx, const session_info *info);

/* session_start - send the greeting */
void session_start(session *s);

/* session_feed - process bytes from the client; what cannot be processed yet is kept */
void session_feed(session *s, const char *data, size_t len);

/* session_wants_input - 0 while the session waits (a commit in progress, closing): stop reading then */
int session_wants_input(const session *s);

/* session_commit_done - the host's answer to commit(): id of the stored message, or NULL on failure */
void session_commit_done(session *s, const char *id);

/* session_in_transaction - 1 between MAIL FROM and the end of the transaction */
int session_in_transaction(const session *s);

/* session_timeout - the client was idle too long: 421 and close */
void session_timeout(session *s);

/* session_shutdown - the server is stopping: 421 and close */
void session_shutdown(session *s);

/* session_state_name - the current state, for logs and the admin socket */
const char *session_state_name(const session *s);

void session_free(session *s);

#endif
