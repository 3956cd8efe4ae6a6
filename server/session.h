/*
 * session.h - one SMTP session: the ESMTP state machine, independent of sockets and the event loop.
 *
 * The connection feeds the session the (decrypted) bytes it reads and gets replies back through
 * session_host. The session never blocks and never owns a socket, which lets the unit tests and fuzzers
 * drive the real protocol code over a fake transport. At every stage it asks the fault engine what to do
 * (faults/fault.h) and carries out what can be done in the protocol; waiting, dripping, resetting and TLS
 * are asked of the host. Implements RFC 5321 with PIPELINING (RFC 2920), SIZE (RFC 1870),
 * ENHANCEDSTATUSCODES (RFC 2034, 3463), 8BITMIME (RFC 6152), CHUNKING and BINARYMIME (RFC 3030), SMTPUTF8
 * (RFC 6531), STARTTLS (RFC 3207), AUTH (RFC 4954) and the DSN parameters of RFC 3461 (parsed and
 * validated, not acted on).
 */
#ifndef SMTPFAULT_SESSION_H
#define SMTPFAULT_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "fault.h"
#include "findings.h"
#include "sasl.h"
#include "store.h"

/*
 * session_budget - message content held by every session together, from the first byte of a transaction's
 * content until it is dropped or the store has answered its commit. One per server, shared by its sessions.
 */
typedef struct session_budget {
    uint64_t used, max;
} session_budget;

/* session_config - the listener's policy; a fault profile may override parts of it (fault_settings) */
typedef struct session_config {
    const char *hostname;      /* our name in the greeting, EHLO and 221/421 replies */
    uint64_t max_message_size; /* SIZE advertised and enforced (552 5.3.4) */
    size_t max_recipients;     /* RCPTs per transaction; RFC 5321 4.5.3.1.8 asks for at least 100 */
    unsigned max_errors;       /* bad commands before 421 4.7.0 and close */
    int starttls;              /* STARTTLS is offered (TLS is set up and the session is not TLS yet) */
    int tls_required;          /* MAIL needs STARTTLS first; AUTH is offered only after it (submission) */
    int auth_required;         /* MAIL needs AUTH first: 530 5.7.0 */
    unsigned auth_mechs;       /* 1u << sasl_mech offered; 0: no AUTH */
    sasl_users users;          /* with none, any credentials are accepted */
    session_budget *inflight;  /* shared by the server's sessions: 452 4.3.1 past it (NULL: no bound) */
} session_config;

/*
 * session_host - what the session needs from its connection. Every call is made from inside a session_*
 * function; output is buffered by the host and written after that function returns.
 */
typedef struct session_host {
    /* send - queue reply bytes for the client */
    void (*send)(void *ctx, const char *data, size_t len);
    /* close - close once the queued output is written; reset: send an RST now and drop the output */
    void (*close)(void *ctx, const char *reason, int reset);
    /*
     * commit - keep an accepted message. The host takes the reference it is given and must answer with
     * session_commit_done(), from inside this call or later; the session reads no input until then.
     */
    void (*commit)(void *ctx, store_msg *msg);
    /* starttls - once the output queued so far is written, start a TLS handshake and read only TLS */
    void (*starttls)(void *ctx);
    /* wait - call session_resume() after ms milliseconds */
    void (*wait)(void *ctx, uint32_t ms);
    /* drip - send the output from here to the end of this call at bps bytes per second (what was sent
     * before goes at once), then call session_resume() */
    void (*drip)(void *ctx, uint32_t bps);
    /* now - a monotonic clock in milliseconds (the fault engine's time) */
    int64_t (*now)(void *ctx);
    /* wall_ms - the wall clock in milliseconds since the epoch (a message's times in its envelope) */
    int64_t (*wall_ms)(void *ctx);
    /* event - one transcript event: "command", "reply", "fault", "auth", "state", ... */
    void (*event)(void *ctx, int level, const char *event, const char *text, size_t len);
} session_host;

typedef struct session session;

typedef struct session_info {
    uint64_t id;          /* transcript id, unique in the process */
    const char *client;   /* "addr:port" of the client */
    const char *listener; /* listener name: "smtp", "submission", "smtps" */
    fault_conn *faults;   /* the connection's fault state (NULL: no fault engine) */
} session_info;

/* session_new - a session in its initial state, or NULL when out of memory. Call session_start next. */
session *session_new(const session_config *cfg, const session_host *host, void *ctx,
                     const session_info *info);

/* session_start - send the greeting (after the greeting stage's fault, if any) */
void session_start(session *s);

/* session_feed - process bytes from the client; what cannot be processed yet is kept */
void session_feed(session *s, const char *data, size_t len);

/* session_wants_input - 0 while the session waits (a commit, a delay, a handshake, closing) */
int session_wants_input(const session *s);

/* session_discards_input - 1 once the session ignores input for good (a hang): read and drop it */
int session_discards_input(const session *s);

/* session_commit_done - the host's answer to commit(): id of the stored message, or NULL on failure */
void session_commit_done(session *s, const char *id);

/* session_resume - the host's answer to wait() and drip() */
void session_resume(session *s);

/*
 * session_tls_established - TLS is up: for implicit TLS before session_start, or after STARTTLS, when
 * the session forgets what the client said before (RFC 3207 section 4.2) and drops any plaintext that
 * followed the STARTTLS command (section 5).
 */
void session_tls_established(session *s, const char *version, const char *cipher);

/* session_tls_abandoned - after the STARTTLS 220, the handshake does not happen (a fault): plain text again
 */
void session_tls_abandoned(session *s);

/* session_in_transaction - 1 between MAIL FROM and the end of the transaction */
int session_in_transaction(const session *s);

/* session_timeout - the client was idle too long: 421 and close (silently while hanging) */
void session_timeout(session *s);

/* session_shutdown - the server is stopping: 421 and close */
void session_shutdown(session *s);

/* session_state_name - the current state, for logs and the admin socket */
const char *session_state_name(const session *s);

/* session_user - the authenticated user, or NULL */
const char *session_user(const session *s);

/* session_helo - the last EHLO/HELO name, or NULL */
const char *session_helo(const session *s);

/* session_finding - the host saw the client do what id names (an early talker, a drop without QUIT) */
void session_finding(session *s, finding_id id, const char *line, size_t len);

/* session_not_smtp - the client speaks another protocol (a TLS handshake on a plaintext port): what it
 * sends says nothing of its SMTP, so the session records no finding */
void session_not_smtp(session *s);

/* session_story_finding - the client's retry story made x (client_story.h) with a try of this session */
void session_story_finding(session *s, const finding *x);

/* session_findings - the session's findings so far (the host may move them away once it is over) */
findings *session_findings(session *s);

/* session_spoke_over_tls - a command came over TLS: a client that then leaves without QUIT owes one (one that
 * leaves right after the handshake refused the certificate) */
int session_spoke_over_tls(const session *s);

/* session_awaits_command - 1 while the session waits for the client's next command or content */
int session_awaits_command(const session *s);

/* session_input_after_close - what the client sent after the session ended, read and dropped by the host */
void session_input_after_close(session *s, const char *data, size_t len);

void session_free(session *s);

#endif
