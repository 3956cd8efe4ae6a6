/*
 * session.c - the ESMTP state machine (RFC 5321 sections 3 and 4), with STARTTLS, AUTH and fault gates.
 *
 * Input is framed into command lines, or into DATA/BDAT content while a message is being received, and
 * processed in order, so a whole pipelined group (RFC 2920) in one read is answered in order. The session
 * stops taking input while it waits (a commit, a fault's delay or drip, a TLS handshake), which keeps
 * replies ordered and bounds what it buffers: the connection stops reading until session_wants_input()
 * says otherwise.
 *
 * Faults: each command asks the engine once, at the point where the facts the rules match on are known
 * and before anything happens (gate()). A delay pauses there; the command is then run again from the top
 * with the decision kept, so everything before the gate must be free of side effects. A positive injected
 * reply (2xx, 3xx) lets the command happen with the injected text instead of its own; a negative one
 * (4xx, 5xx) replaces it. Injected replies do not count as client errors.
 *
 * Reply texts follow RFC 5321 section 4.2 with the enhanced codes of RFC 3463, on every reply but the
 * greeting, the EHLO/HELO replies and 354 (RFC 2034 section 4).
 */
#include "session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bytebuf.h"
#include "fault_gate.h"
#include "findings.h"
#include "sf_assert.h"
#include "log.h"
#include "smtp_data.h"
#include "smtp_parse.h"

#define REPLY_MAX             600                          /* one formatted reply line, CRLF included */
#define SESSION_INBUF_MAX     (SMTP_AUTH_LINE_MAX + 65536) /* a partial line plus one read while paused */
#define SESSION_INBUF_INITIAL 1024                         /* a partial command line or two */
#define TLS_NAME_MAX          64
#define SMTP_PARAM_ECHO_MAX   64 /* an unsupported parameter's key, as echoed in the 555 */

/* X(ENUM, "name") - the session states */
#define SESSION_STATE_LIST(X)                                                                  \
    X(INIT, "init")         /* before the greeting */                                          \
    X(GREETED, "greeted")   /* waiting for EHLO/HELO */                                        \
    X(READY, "ready")       /* EHLO done, no transaction */                                    \
    X(MAIL, "mail")         /* MAIL FROM accepted, no recipient yet */                         \
    X(RCPT, "rcpt")         /* at least one recipient */                                       \
    X(DATA, "data")         /* reading DATA content */                                         \
    X(BDAT, "bdat")         /* reading a BDAT chunk */                                         \
    X(AUTH, "auth")         /* a SASL exchange waits for the client's response */              \
    X(TLS, "tls")           /* STARTTLS accepted: the handshake runs, plaintext is ignored */  \
    X(COMMIT, "commit")     /* message accepted, waiting for the store */                      \
    X(REJECTED, "rejected") /* the greeting refused service: only QUIT is answered normally */ \
    X(HANG, "hang")         /* a fault: never answer again */                                  \
    X(CLOSING, "closing")   /* last reply sent, input ignored */

typedef enum session_state {
#define STATE_ENUM(e, s) ST_##e,
    SESSION_STATE_LIST(STATE_ENUM)
#undef STATE_ENUM
} session_state;

static const char *const state_names[] = {
#define STATE_NAME(e, s) s,
    SESSION_STATE_LIST(STATE_NAME)
#undef STATE_NAME
};

/* What session_resume() continues with, after a wait or a drip. */
typedef enum resume_kind {
    RESUME_CONTINUE, /* the step is complete: read on */
    RESUME_GREETING, /* send the greeting */
    RESUME_LINE,     /* run the command line at the head of the input again */
    RESUME_AUTH,     /* finish the SASL exchange with its stored result */
    RESUME_DATA_END, /* finish the message just received */
} resume_kind;

struct session {
    uint64_t id;
    session_state state;
    const session_config *cfg;
    const session_host *host;
    void *ctx;
    char client[STORE_CLIENT_MAX];
    char listener[STORE_LISTENER_MAX];

    /* the listener's policy with the profile's settings applied */
    fault_conn *faults;
    const char *hostname;
    const char *greeting;
    const char *banner;    /* the profile's whole banner text (placeholders) */
    const char *ehlo_text; /* the profile's first EHLO line (placeholders) */
    uint64_t max_size;
    size_t max_rcpts;
    unsigned ehlo_remove;
    unsigned mechs;
    sasl_users users;

    char *helo; /* last EHLO/HELO argument */
    int esmtp;  /* EHLO (not HELO): extensions and their parameters are allowed */
    unsigned errors;

    int tls; /* the session is encrypted */
    char tls_version[TLS_NAME_MAX], tls_cipher[TLS_NAME_MAX];
    const char *tls_version_static, *tls_cipher_static; /* the host's strings, for the envelope */
    char *user;                                         /* authenticated user */
    sasl_exchange sasl;
    sasl_result sasl_result; /* SASL_OK or SASL_BAD_CREDS while the auth gate waits */

    store_msg *tx;       /* the transaction in progress, NULL outside one */
    int tx_bdat;         /* the transaction uses BDAT: DATA is no longer allowed */
    int tx_oversize;     /* content passed the size limit: it is read and dropped */
    int tx_oom;          /* memory ran out, or the in-flight bound was reached, while storing content */
    uint64_t tx_charged; /* bytes counted in cfg->inflight: the content, or the SIZE= reserved if more */
    smtp_data_decoder data;
    uint64_t bdat_size;      /* size of the chunk being read */
    uint64_t bdat_left;      /* chunk bytes still to read */
    int bdat_last;           /* the chunk is the last one */
    const char *bdat_reject; /* reply for a rejected chunk, sent once its bytes are read */
    int bdat_reject_raw;     /* bdat_reject is a formatted reply (CRLFs included), not one line */

    /* fault state of the current step */
    fault_decision decision; /* the last decision that fired */
    int pending;             /* decision waits for its delay to pass, at pending_stage */
    fault_stage pending_stage;
    int waiting; /* the host owes a session_resume() */
    resume_kind resume;
    const char *override; /* a positive injected reply replacing the step's own */
    size_t override_len;
    char *override_buf; /* override with its placeholders filled in, when it had any */
    int override_sent;
    int discard;       /* data_end: answer as usual, keep nothing */
    uint32_t drip_bps; /* the step's output is dripped */
    int drip_due;      /* drip_bps is set and the host is yet to hear of it: at the step's first output */
    int truncating;    /* the step's output stops after truncate_left bytes, then the session closes */
    size_t truncate_left;
    fault_close close_after; /* close once the step is done */
    int reset_at_data_end;   /* a reset after the 354: it comes once the client has sent its message */

    /* what the client did wrong (findings.h), and what spotting it needs to remember */
    findings findings;
    findings_text_scan data_scan; /* the DATA content of the transaction */
    int pipelining_offered;       /* the last EHLO reply offered PIPELINING */
    int tls_fresh;                /* TLS just came up after STARTTLS: the next command should be EHLO */
    int spoke_over_tls;           /* a command came over TLS (one that leaves after it owes a QUIT) */
    int sent_421;                 /* a 421 was sent: the session ends, what the client says next is lost */
    int line_followed;            /* the line being run had more input after it (sent before its reply) */
    int last_followed;            /* line_followed of the last line run */
    int prev_followed;            /* ... and of the line before that */
    int rcpt_tried;               /* the transaction has had a RCPT command */
    int not_smtp;                 /* the client speaks another protocol (TLS on this port): no findings */

    int discarding; /* an over-long line is being skipped up to its LF */
    int feeding;    /* inside session_feed: a synchronous commit must not re-enter it */
    bytebuf in;     /* input not yet processed (a partial line, or what arrived while paused) */
};

/* -- helpers ------------------------------------------------------------------------------------------- */

static void event(session *s, int level, const char *name, const char *text, size_t len)
{
    s->host->event(s->ctx, level, name, text, len);
}

static void eventf(session *s, int level, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void eventf(session *s, int level, const char *name, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_vformat(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n > 0)
        event(s, level, name, text, n);
}

/* record - keep a finding made at wall time ms, and say so in the transcript the first time */
static void record(session *s, finding_id id, int64_t ms, const char *line, size_t len)
{
    char text[FINDING_EVENT_MAX];
    if (findings_add(&s->findings, id, ms, s->id, line, len) == 1)
        event(s, LOG_INFO, "finding", text, finding_describe(id, text, sizeof(text)));
}

/* found - the client did something findings.h names, in this session */
static void found(session *s, finding_id id, const char *line, size_t len)
{
    if (s->not_smtp)
        return;
    /* A finding keeps its line, which is never to hold a credential: an AUTH line up to its mechanism. */
    if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
        const char *sp = memchr(line + 5, ' ', len - 5);
        len = sp != NULL ? (size_t)(sp - line) : len;
    }
    record(s, id, s->host->wall_ms(s->ctx), line, len);
}

/* eightbit_finding - 8-bit message content (DATA or BDAT) the MAIL command did not declare */
static void eightbit_finding(session *s)
{
    static const char what[] = "(message content)";
    const char *body = s->tx != NULL ? s->tx->body_type : NULL;
    if (s->data_scan.eightbit && (body == NULL || strcasecmp(body, "7BIT") == 0))
        found(s, FINDING_EIGHTBIT_WITHOUT_8BITMIME, what, sizeof(what) - 1);
}

/* set_state - the one place states change; logged at debug level */
static void set_state(session *s, session_state next)
{
    if (s->state == next)
        return;
    if (log_enabled(LOG_DEBUG))
        eventf(s, LOG_DEBUG, "state", "%s -> %s", state_names[s->state], state_names[next]);
    s->state = next;
}

/* emit - bytes to the client, cut short when a truncate fault is in force */
static void emit(session *s, const char *data, size_t len)
{
    if (s->truncating) {
        if (len > s->truncate_left)
            len = s->truncate_left;
        s->truncate_left -= len;
    }
    if (len == 0)
        return;
    if (s->drip_due) { /* what the batch said before this step is not the rule's to slow down */
        s->drip_due = 0;
        s->host->drip(s->ctx, s->drip_bps);
    }
    s->host->send(s->ctx, data, len);
}

/* emit_reply - a formatted reply (CRLF after every line), each line logged */
static void emit_reply(session *s, const char *reply, size_t len)
{
    for (const char *p = reply, *end = reply + len; p < end;) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (n >= 3 && memcmp(p, "421", 3) == 0)
            s->sent_421 = 1;
        event(s, LOG_INFO, "reply", p, n);
        p += n + 2;
    }
    emit(s, reply, len);
}

/* send_reply - a formatted reply of the session's own; replaced by an injected reply when one is in force */
static void send_reply(session *s, const char *reply, size_t len)
{
    if (s->override != NULL) {
        if (!s->override_sent)
            emit_reply(s, s->override, s->override_len);
        s->override_sent = 1;
        return;
    }
    emit_reply(s, reply, len);
}

/* send_line - one reply line of the session's own (CRLF added) */
static void send_line(session *s, const char *line, size_t len)
{
    char buf[REPLY_MAX + 2];
    memcpy(buf, line, len);
    buf[len] = '\r';
    buf[len + 1] = '\n';
    send_reply(s, buf, len + 2);
}

/* reply - one single-line reply, printf-style, CRLF added */
static void reply(session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(session *s, const char *fmt, ...)
{
    char line[REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    send_line(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void close_session(session *s, const char *reason, int reset)
{
    if (s->state == ST_CLOSING)
        return;
    set_state(s, ST_CLOSING);
    s->host->close(s->ctx, reason, reset);
}

/* error_reply - a reply to a bad command; too many of them end the session (RFC 5321 4.2.1 allows 421) */
static void error_reply(session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void error_reply(session *s, const char *fmt, ...)
{
    char line[REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        send_line(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    if (++s->errors >= s->cfg->max_errors) {
        reply(s, "421 4.7.0 %s Error: too many errors, closing connection", s->hostname);
        close_session(s, "too many errors", 0);
    }
}

/* command_state - the state that waits for the next command, given the session's facts */
static session_state command_state(const session *s)
{
    if (s->tx != NULL)
        return s->tx->nrcpts > 0 ? ST_RCPT : ST_MAIL;
    return s->helo != NULL ? ST_READY : ST_GREETED;
}

/* release_inflight - the session's content no longer counts against the server-wide bound */
static void release_inflight(session *s)
{
    if (s->cfg->inflight != NULL) {
        SF_ASSERT(s->cfg->inflight->used >= s->tx_charged); /* a session gives back only what it took */
        s->cfg->inflight->used -= s->tx_charged;
    }
    s->tx_charged = 0;
}

/* inflight_full - 1 when the server-wide bound leaves no room for n more bytes of content */
static int inflight_full(const session *s, uint64_t n)
{
    const session_budget *b = s->cfg->inflight;
    return b != NULL && (b->used >= b->max || n > b->max - b->used);
}

/*
 * charge_inflight - count the transaction as holding total bytes (no less than it holds already); 0, or -1
 * when the server-wide bound has no room for them
 */
static int charge_inflight(session *s, uint64_t total)
{
    if (total <= s->tx_charged)
        return 0;
    if (inflight_full(s, total - s->tx_charged))
        return -1;
    if (s->cfg->inflight != NULL)
        s->cfg->inflight->used += total - s->tx_charged;
    s->tx_charged = total;
    return 0;
}

static void drop_transaction(session *s)
{
    release_inflight(s);
    store_msg_unref(s->tx);
    s->tx = NULL;
    s->tx_bdat = s->tx_oversize = s->tx_oom = 0;
}

static void reset_transaction(session *s)
{
    drop_transaction(s);
    if (s->state != ST_CLOSING && s->state != ST_INIT && s->state != ST_HANG)
        set_state(s, command_state(s));
}

/* content_sink - body bytes into the message, until it passes the size limit */
static void content_sink(void *ctx, const char *data, size_t len)
{
    session *s = ctx;
    SF_ASSERT(s->tx != NULL); /* content is read only inside a transaction */
    if (s->tx_oversize || s->tx_oom)
        return;
    if (s->tx->size + len > s->max_size) {
        s->tx_oversize = 1;
        return;
    }
    if (charge_inflight(s, s->tx->size + len) != 0 || store_msg_append(s->tx, data, len) != 0) {
        /* This message is lost (452 at its end): its share goes back at once, so that others can finish
         * rather than every large message in flight failing together. */
        s->tx_oom = 1;
        store_msg_drop_body(s->tx);
        release_inflight(s);
    }
}

/* -- fault gates ------------------------------------------------------------------------------------------
 */

typedef enum gate_result {
    GATE_PROCEED, /* do the command (an injected positive reply, drip or truncate may change its output) */
    GATE_TAKEN,   /* the fault answered instead (or closed, or hangs): the command does not happen */
    GATE_PAUSED,  /* a delay runs: stop; the step resumes through session_resume() */
} gate_result;

/* facts - what the session knows, for the rules to match on */
static void facts(const session *s, fault_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->helo = s->helo;
    f->user = s->user;
    f->authenticated = s->user != NULL;
    f->tls = s->tls;
    if (s->tx != NULL) {
        f->sender = s->tx->sender;
        f->rcpts = (const char *const *)s->tx->rcpts;
        f->nrcpts = s->tx->nrcpts;
    }
}

/* client_ip - the address part of "1.2.3.4:5678" or "[::1]:5678" */
static void client_ip(const session *s, char *out, size_t outsz)
{
    const char *c = s->client, *colon = strrchr(c, ':');
    size_t n = colon ? (size_t)(colon - c) : strlen(c);
    if (n >= 2 && c[0] == '[' && c[n - 1] == ']') {
        c++;
        n -= 2;
    }
    snprintf(out, outsz, "%.*s", (int)n, c);
}

/*
 * fill - head (fixed text), then text (len bytes) with its placeholders filled in from the session and facts
 * f (may be NULL), then tail: a formatted reply, whose lines are folded to the RFC 5321 limit. In a buffer
 * of exactly its size (malloc'd, NUL-terminated), its length in *out_len; NULL when out of memory.
 */
static char *fill(const session *s, const fault_facts *f, const char *head, const char *text, size_t len,
                  const char *tail, size_t *out_len)
{
    char ip[64];
    client_ip(s, ip, sizeof(ip));
    fault_vars v;
    memset(&v, 0, sizeof(v));
    v.v[FAULT_VAR_client] = ip;
    v.v[FAULT_VAR_sender] = f ? f->sender : (s->tx ? s->tx->sender : NULL);
    v.v[FAULT_VAR_rcpt] = f ? f->rcpt : NULL;
    v.v[FAULT_VAR_helo] = f && f->helo ? f->helo : s->helo;
    v.v[FAULT_VAR_user] = f && f->user ? f->user : s->user;
    v.v[FAULT_VAR_hostname] = s->hostname;
    v.v[FAULT_VAR_listener] = s->listener;
    size_t hlen = strlen(head), tlen = strlen(tail), n = fault_expand(text, len, &v, NULL, 0);
    size_t total = hlen + n + tlen;
    char *line = malloc(total + 1);
    if (line == NULL)
        return NULL;
    memcpy(line, head, hlen);
    fault_expand(text, len, &v, line + hlen, n + 1);
    memcpy(line + hlen + n, tail, tlen + 1);
    size_t folded = fault_fold_reply(line, total, NULL, 0);
    char *out = folded == total ? line : malloc(folded + 1);
    if (out != line && out != NULL)
        fault_fold_reply(line, total, out, folded + 1);
    if (out != line)
        free(line);
    *out_len = folded;
    return out;
}

/* send_filled - a reply of the session's own made by fill(); 451 when memory ran out */
static void send_filled(session *s, const fault_facts *f, const char *head, const char *text)
{
    size_t len;
    char *r = fill(s, f, head, text, strlen(text), "\r\n", &len);
    if (r == NULL) {
        send_line(s, "451 4.3.0 Error: out of memory", 30);
        return;
    }
    send_reply(s, r, len);
    free(r);
}

/* pause_for - ask the host to wait; resume says what to do when it is over */
static void pause_for(session *s, uint32_t ms, resume_kind resume)
{
    s->waiting = 1;
    s->resume = resume;
    s->host->wait(s->ctx, ms);
}

/*
 * gate - ask the fault engine at stage. resume says how the step restarts after a delay (it must be
 * re-entrant up to this call). On GATE_TAKEN the step is over; on GATE_PROCEED the command goes on.
 */
static gate_result gate(session *s, fault_stage stage, const fault_facts *f, resume_kind resume)
{
    if (s->faults == NULL ||
        (!(s->pending && s->pending_stage == stage) && !fault_conn_wants(s->faults, stage)))
        return GATE_PROCEED;
    fault_decision *d = &s->decision;
    int delayed = 0;
    if (s->pending && s->pending_stage == stage) {
        s->pending = 0;
        delayed = 1; /* the decision was taken before the delay; it is not taken again */
    } else {
        if (fault_gate_decide(s->faults, stage, f, s->host->now(s->ctx), d, s->host->event, s->ctx) == NULL)
            return GATE_PROCEED;
    }
    const fault_action *a = d->act;
    if (a->delay_ms > 0 && !delayed) {
        s->pending = 1;
        s->pending_stage = stage;
        pause_for(s, a->delay_ms, resume);
        return GATE_PAUSED;
    }
    if (a->hang) {
        set_state(s, ST_HANG);
        return GATE_TAKEN;
    }
    if (a->drip_bps > 0) {
        s->drip_bps = a->drip_bps;
        s->drip_due = 1;
    }
    if (a->truncate > 0) {
        s->truncating = 1;
        s->truncate_left = a->truncate;
    }
    s->close_after = fault_gate_close_after(a);
    if (a->raw != NULL) {
        emit(s, a->raw, a->raw_len);
        event(s, LOG_INFO, "reply", a->raw, a->raw_len);
        return GATE_TAKEN;
    }
    if (a->reply != NULL) {
        /* Placeholders: the reply is made again, at its exact size; the compiled one is the fallback. */
        size_t len = a->reply_len;
        char *filled = memchr(a->reply, '{', len) != NULL ? fill(s, f, "", a->reply, len, "", &len) : NULL;
        if (filled == NULL)
            len = a->reply_len;
        if (a->reply_code < 400) {
            free(s->override_buf);
            s->override_buf = filled;
            s->override = filled ? filled : a->reply;
            s->override_len = len;
            s->override_sent = 0;
            return GATE_PROCEED;
        }
        emit_reply(s, filled ? filled : a->reply, len);
        free(filled);
        return GATE_TAKEN;
    }
    if (a->discard)
        s->discard = 1;
    if (a->close != FAULT_CLOSE_NONE && a->drip_bps == 0 && a->truncate == 0 && !a->discard)
        return GATE_TAKEN; /* close without a word */
    return GATE_PROCEED;
}

/*
 * step_done - the end of one step (a command, the end of a message, the greeting): carry out what the
 * fault asked for after it (close, a truncated reply, a drip) and forget the step's fault state.
 */
static void step_done(session *s)
{
    if ((s->waiting && s->pending) || s->state == ST_COMMIT)
        return; /* paused in a gate, or the reply waits for the store: the step is not over */
    s->override = NULL;
    free(s->override_buf);
    s->override_buf = NULL;
    s->discard = 0;
    /* The host drips the step's output (if it had any), then resumes the session (or closes). */
    int dripped = s->drip_bps > 0 && !s->drip_due;
    s->drip_bps = 0;
    s->drip_due = 0;
    if (s->state == ST_CLOSING || s->state == ST_HANG) {
        s->close_after = FAULT_CLOSE_NONE;
        s->truncating = 0;
        return;
    }
    if (s->truncating) {
        s->truncating = 0;
        s->close_after = FAULT_CLOSE_NONE;
        close_session(s, "fault: reply truncated", 0);
        return;
    }
    if (s->close_after == FAULT_CLOSE_RST && s->state == ST_DATA) {
        /* The client goes on with its message: the reset meets it there, as when a server dies mid-message
         * (a client then reports the reset when it reads the reply, whatever its timing). */
        s->close_after = FAULT_CLOSE_NONE;
        s->reset_at_data_end = 1;
        s->waiting = dripped;
        s->resume = RESUME_CONTINUE;
        return;
    }
    if (s->close_after != FAULT_CLOSE_NONE) {
        int reset = s->close_after == FAULT_CLOSE_RST;
        s->close_after = FAULT_CLOSE_NONE;
        close_session(s, reset ? "fault: connection reset" : "fault: connection closed", reset);
        return;
    }
    if (dripped) {
        s->waiting = 1;
        s->resume = RESUME_CONTINUE;
    }
}

/* -- end of data ------------------------------------------------------------------------------------------
 */

static int offered(const session *s, fault_ehlo_cap cap);

/* end_of_message - the content is complete: reject it, or hand it to the host to keep */
static void end_of_message(session *s)
{
    if (s->reset_at_data_end) { /* nothing is kept */
        close_session(s, "fault: connection reset", 1);
        drop_transaction(s);
        return;
    }
    if (s->tx_oversize) {
        if (s->esmtp && offered(s, FAULT_EHLO_SIZE))
            found(s, FINDING_SIZE_EXCEEDED_ANYWAY, "(message content)", sizeof("(message content)") - 1);
        reply(s, "552 5.3.4 Error: message size exceeds fixed maximum message size (%llu octets)",
              (unsigned long long)s->max_size);
        reset_transaction(s);
        return;
    }
    if (s->tx_oom) {
        reply(s, "452 4.3.1 Error: insufficient system storage");
        reset_transaction(s);
        return;
    }
    if (!s->tx_bdat && s->data.longest_line > SMTP_TEXT_LINE_MAX) {
        reply(s,
              "554 5.6.0 Error: message has a line of %zu octets, over the limit of %d (RFC 5321 4.5.3.1.6)",
              s->data.longest_line, SMTP_TEXT_LINE_MAX);
        reset_transaction(s);
        return;
    }
    fault_facts f;
    facts(s, &f);
    gate_result g = gate(s, FAULT_STAGE_DATA_END, &f, RESUME_DATA_END);
    if (g == GATE_PAUSED)
        return;
    if (g == GATE_TAKEN) {
        reset_transaction(s);
        return;
    }
    store_msg *m = s->tx;
    s->tx = NULL;
    m->received_ms = s->host->wall_ms(s->ctx);
    /* A discarded message goes the same way, so that its reply cannot be told from a kept one's. */
    m->discard = s->discard;
    set_state(s, ST_COMMIT);
    s->host->commit(s->ctx, m);
}

static void process_input(session *s);
static void bdat_chunk_done(session *s, uint64_t size);

void session_commit_done(session *s, const char *id)
{
    if (s->state != ST_COMMIT)
        return;
    release_inflight(s); /* the store holds the content now, or it is gone */
    if (id != NULL) {
        reply(s, "250 2.0.0 Ok: queued as %s", id);
        if (s->faults != NULL)
            fault_conn_message_accepted(s->faults, s->host->now(s->ctx));
    } else {
        reply(s, "451 4.3.0 Error: could not store the message, try again later");
    }
    reset_transaction(s);
    step_done(s);
    /* Input that arrived while the commit was in flight waits in s->in. */
    if (!s->feeding)
        process_input(s);
}

/* -- commands ------------------------------------------------------------------------------------------- */

/* command_args - what a command's check found: the facts its fault gate matches on, and its arguments */
typedef struct command_args {
    fault_facts f;
    char name[SMTP_COMMAND_LINE_MAX]; /* EHLO/HELO: the client's name */
    char verb[64];                    /* an unknown command's verb, for its facts */
    smtp_path path;                   /* MAIL, RCPT */
    smtp_params params;               /* MAIL */
} command_args;

/* A command's checks (state, sequence, syntax): 1 to go on, or 0 after the error reply. No side effects,
 * since a command paused by a delay at its gate is run again from its check. */
typedef int (*command_check)(session *s, const smtp_command *cmd, command_args *a);
/* What the command does once its checks and its fault gate let it. */
typedef void (*command_proceed)(session *s, const smtp_command *cmd, command_args *a);

/* command_len - the length of the command line cmd was split from */
static size_t command_len(const smtp_command *cmd)
{
    return cmd->arg_len > 0 ? (size_t)(cmd->arg + cmd->arg_len - cmd->verb) : cmd->verb_len;
}

/* need_no_arg - the command takes no argument: 501 if it has one */
static int need_no_arg(session *s, const smtp_command *cmd, const char *syntax)
{
    if (cmd->arg_len == 0)
        return 1;
    error_reply(s, "501 5.5.4 Syntax: %s", syntax);
    return 0;
}

static int offered(const session *s, fault_ehlo_cap cap)
{
    return !(s->ehlo_remove & (1u << cap));
}

static int starttls_offered(const session *s)
{
    return s->cfg->starttls && !s->tls && offered(s, FAULT_EHLO_STARTTLS);
}

static int auth_offered(const session *s)
{
    return s->mechs != 0 && offered(s, FAULT_EHLO_AUTH) && (!s->cfg->tls_required || s->tls);
}

/* check_ehlo_helo - a name is required; it is the gate's helo */
static int check_ehlo_helo(session *s, const smtp_command *cmd, command_args *a, int esmtp)
{
    if (cmd->arg_len == 0) {
        error_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return 0;
    }
    size_t n = 0;
    while (n < cmd->arg_len && cmd->arg[n] != ' ')
        n++;
    memcpy(a->name, cmd->arg, n);
    a->name[n] = '\0';
    a->f.helo = a->name;
    return 1;
}

static int check_ehlo(session *s, const smtp_command *cmd, command_args *a)
{
    return check_ehlo_helo(s, cmd, a, 1);
}

static int check_helo(session *s, const smtp_command *cmd, command_args *a)
{
    return check_ehlo_helo(s, cmd, a, 0);
}

static void ehlo_helo(session *s, command_args *a, int esmtp)
{
    char *helo = strdup(a->name);
    if (helo == NULL) {
        reply(s, "451 4.3.0 Error: out of memory");
        return;
    }
    free(s->helo);
    s->helo = helo;
    s->esmtp = esmtp;
    s->pipelining_offered = 0;
    /* RFC 5321 4.1.4: EHLO/HELO in a transaction resets it, and its facts (the EHLO text's) go with it. */
    drop_transaction(s);
    a->f.sender = NULL;
    a->f.rcpts = NULL;
    a->f.nrcpts = 0;
    set_state(s, ST_READY);

    if (!esmtp) {
        reply(s, "250 %s", s->hostname);
        return;
    }
    char size_line[48], auth_line[80];
    snprintf(size_line, sizeof(size_line), "SIZE %llu", (unsigned long long)s->max_size);
    size_t o = (size_t)snprintf(auth_line, sizeof(auth_line), "AUTH");
    for (int m = 0; m < SASL_MECH_COUNT; m++)
        if (s->mechs & (1u << m))
            o += (size_t)snprintf(auth_line + o, sizeof(auth_line) - o, " %s", sasl_mech_name((sasl_mech)m));
    /* Postfix's order, which clients have met for decades. */
    struct {
        fault_ehlo_cap cap;
        const char *text;
        int on;
    } caps[] = {
        {FAULT_EHLO_PIPELINING, "PIPELINING", 1},
        {FAULT_EHLO_SIZE, size_line, 1},
        {FAULT_EHLO_STARTTLS, "STARTTLS", starttls_offered(s)},
        {FAULT_EHLO_AUTH, auth_line, auth_offered(s)},
        {FAULT_EHLO_ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES", 1},
        {FAULT_EHLO_8BITMIME, "8BITMIME", 1},
        {FAULT_EHLO_DSN, "DSN", 1},
        {FAULT_EHLO_SMTPUTF8, "SMTPUTF8", 1},
        {FAULT_EHLO_CHUNKING, "CHUNKING", 1},
        {FAULT_EHLO_BINARYMIME, "BINARYMIME", offered(s, FAULT_EHLO_CHUNKING)},
        {FAULT_EHLO_HELP, "HELP", 1},
    };
    const char *lines[sizeof(caps) / sizeof(caps[0])];
    size_t nlines = 0;
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        if (caps[i].on && offered(s, caps[i].cap)) {
            lines[nlines++] = caps[i].text;
            if (caps[i].cap == FAULT_EHLO_PIPELINING)
                s->pipelining_offered = 1;
        }
    if (s->ehlo_text != NULL)
        send_filled(s, &a->f, nlines ? "250-" : "250 ", s->ehlo_text);
    else
        reply(s, "250%c%s", nlines ? '-' : ' ', s->hostname);
    for (size_t i = 0; i < nlines; i++)
        reply(s, "250%c%s", i + 1 == nlines ? ' ' : '-', lines[i]);
}

static void cmd_ehlo(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd;
    ehlo_helo(s, a, 1);
}

static void cmd_helo(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd;
    ehlo_helo(s, a, 0);
}

/* need_helo - 503 when no EHLO/HELO was given (RFC 5321 4.1.4) */
static int need_helo(session *s)
{
    if (s->helo != NULL)
        return 1;
    error_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
    return 0;
}

/* params_ok - 1 when the MAIL/RCPT parameters passed; else the reply that says why, and 0 */
static int params_ok(session *s, smtp_params_status st, const smtp_params_error *err)
{
    int klen = (int)(err->bad.key_len > SMTP_PARAM_ECHO_MAX ? SMTP_PARAM_ECHO_MAX : err->bad.key_len);
    switch (st) {
    case SMTP_PARAMS_OK:
        return 1;
    case SMTP_PARAMS_NEED_EHLO:
        error_reply(s, "555 5.5.4 Error: parameters need EHLO, not HELO");
        return 0;
    case SMTP_PARAMS_UNSUPPORTED:
        error_reply(s, "555 5.5.4 Error: unsupported parameter %.*s", klen, err->bad.key);
        return 0;
    case SMTP_PARAMS_DUPLICATE:
        error_reply(s, "501 5.5.4 Error: duplicate parameter %.*s", (int)err->bad.key_len, err->bad.key);
        return 0;
    case SMTP_PARAMS_BAD_VALUE:
        error_reply(s, "%s", err->reply);
        return 0;
    case SMTP_PARAMS_TOO_BIG: /* RFC 1870 section 6.1: a permanent refusal, not a client error */
        reply(s, "552 5.3.4 Error: message size exceeds fixed maximum message size (%llu octets)",
              (unsigned long long)s->max_size);
        return 0;
    case SMTP_PARAMS_MALFORMED:
        error_reply(s, "501 5.5.4 Error: malformed parameters");
        return 0;
    }
    return 0;
}

static int check_starttls(session *s, const smtp_command *cmd, command_args *a)
{
    (void)a;
    if (!need_no_arg(s, cmd, "STARTTLS"))
        return 0;
    if (s->tls) { /* RFC 3207 section 4.2: not offered, and not accepted, twice */
        error_reply(s, "554 5.5.1 Error: TLS already active");
        return 0;
    }
    if (!starttls_offered(s)) {
        error_reply(s, "502 5.5.1 Error: command not implemented");
        return 0;
    }
    if (s->tx != NULL) {
        error_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return 0;
    }
    return 1;
}

static void cmd_starttls(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd, (void)a;
    reply(s, "220 2.0.0 Ready to start TLS");
    set_state(s, ST_TLS);
    s->host->starttls(s->ctx);
}

/* -- AUTH ------------------------------------------------------------------------------------------------ */

/* auth_finish - a SASL exchange ended in s->sasl_result (SASL_OK or SASL_BAD_CREDS): the auth stage */
static void auth_finish(session *s)
{
    fault_facts f;
    facts(s, &f);
    f.user = s->sasl.user;
    f.authenticated = s->sasl_result == SASL_OK;
    gate_result g = gate(s, FAULT_STAGE_AUTH, &f, RESUME_AUTH);
    if (g == GATE_PAUSED)
        return;
    set_state(s, command_state(s));
    if (g == GATE_TAKEN)
        return;
    /* An injected positive reply authenticates whatever was sent, as an "accept all" server does. */
    if (s->sasl_result == SASL_OK || s->override != NULL) {
        free(s->user);
        s->user = strdup(s->sasl.user);
        eventf(s, LOG_INFO, "auth", "%s as %s", sasl_mech_name(s->sasl.mech), s->sasl.user);
        reply(s, "235 2.7.0 Authentication successful");
        return;
    }
    eventf(s, LOG_INFO, "auth", "%s as %s: wrong credentials", sasl_mech_name(s->sasl.mech), s->sasl.user);
    error_reply(s, "535 5.7.8 Authentication credentials invalid");
}

/* sasl_name_shaped - len bytes at name form a SASL mechanism name (RFC 4422 3.1: 1 to 20 of A-Z, 0-9, -
 * and _; lower case taken too, as clients send it) */
static int sasl_name_shaped(const char *name, size_t len)
{
    if (len == 0 || len > 20)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_'))
            return 0;
    }
    return 1;
}

/* auth_result - what to answer for a step of the SASL exchange */
static void auth_result(session *s, sasl_result r, const char *challenge)
{
    switch (r) {
    case SASL_CHALLENGE:
        set_state(s, ST_AUTH);
        reply(s, "334 %s", challenge);
        return;
    case SASL_OK:
    case SASL_BAD_CREDS:
        s->sasl_result = r;
        auth_finish(s);
        return;
    case SASL_BAD_BASE64:
        set_state(s, command_state(s));
        error_reply(s, "501 5.5.2 Error: cannot decode the response (not base64)");
        return;
    case SASL_BAD_SYNTAX:
        set_state(s, command_state(s));
        error_reply(s, "501 5.5.4 Error: malformed %s response", sasl_mech_name(s->sasl.mech));
        return;
    case SASL_CANCELLED:
        set_state(s, command_state(s));
        error_reply(s, "501 5.0.0 Error: authentication cancelled");
        return;
    }
}

static sasl_context sasl_ctx(const session *s)
{
    sasl_context c = {&s->users, s->hostname, (unsigned long long)s->id};
    return c;
}

static void cmd_auth(session *s, const smtp_command *cmd, command_args *a)
{
    (void)a;
    if (!s->tls && starttls_offered(s)) /* found() keeps the mechanism only */
        found(s, FINDING_AUTH_BEFORE_STARTTLS, cmd->verb, command_len(cmd));
    if (!s->esmtp) {
        error_reply(s, "503 5.5.1 Error: send EHLO first");
        return;
    }
    if (s->user != NULL) {
        error_reply(s, "503 5.5.1 Error: already authenticated");
        return;
    }
    if (s->tx != NULL) {
        error_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    if (s->mechs == 0 || !offered(s, FAULT_EHLO_AUTH)) {
        error_reply(s, "502 5.5.1 Error: authentication not enabled");
        return;
    }
    size_t n = 0;
    while (n < cmd->arg_len && cmd->arg[n] != ' ')
        n++;
    if (n == 0) {
        error_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        return;
    }
    int m = sasl_mech_parse(cmd->arg, n);
    if (m < 0 || !(s->mechs & (1u << m))) {
        /* The name is echoed only when it is one by RFC 4422's grammar: never a CR, a control or 8-bit
         * bytes inside a reply. */
        int echo = sasl_name_shaped(cmd->arg, n);
        error_reply(s, "504 5.5.4 Error: unsupported authentication mechanism%s%.*s", echo ? " " : "",
                    echo ? (int)n : 0, cmd->arg);
        return;
    }
    if (s->cfg->tls_required && !s->tls && sasl_mech_is_plaintext((sasl_mech)m)) {
        error_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        return;
    }
    const char *initial = n < cmd->arg_len ? cmd->arg + n + 1 : NULL;
    size_t ilen = initial ? cmd->arg_len - n - 1 : 0;
    char challenge[SASL_CHALLENGE_MAX];
    sasl_context c = sasl_ctx(s);
    auth_result(s, sasl_start(&s->sasl, (sasl_mech)m, initial, ilen, &c, challenge, sizeof(challenge)),
                challenge);
}

/* auth_line - the client's answer to a 334 challenge */
static void auth_line(session *s, const char *line, size_t len)
{
    char challenge[SASL_CHALLENGE_MAX];
    sasl_context c = sasl_ctx(s);
    auth_result(s, sasl_step(&s->sasl, line, len, &c, challenge, sizeof(challenge)), challenge);
}

/* -- MAIL, RCPT, DATA, BDAT
 * ----------------------------------------------------------------------------------- */

/*
 * path_argument - "FROM:<path> [params]" (sender) or "TO:<path> [params]": the path, and where the
 * parameters are; 0 after the error reply (RFC 5321 4.1.2, with the null path for a sender only and
 * <Postmaster> for a recipient only).
 */
static int path_argument(session *s, const smtp_command *cmd, int sender, smtp_path *path, const char **cur,
                         const char **end)
{
    const char *verb = sender ? "MAIL FROM" : "RCPT TO";
    size_t skip = smtp_strip_keyword(cmd->arg, cmd->arg_len, sender ? "FROM:" : "TO:");
    if (skip == 0) {
        error_reply(s, "501 5.5.4 Syntax: %s:<address>", verb);
        return 0;
    }
    size_t used = 0;
    smtp_path_status st = smtp_parse_path(cmd->arg + skip, cmd->arg_len - skip, sender, !sender, path, &used);
    if (st != SMTP_PATH_OK) {
        error_reply(s, "501 %s Bad %s address: %s", sender ? "5.1.7" : "5.1.3",
                    sender ? "sender" : "recipient", smtp_path_status_text(st));
        return 0;
    }
    *cur = cmd->arg + skip + used;
    *end = cmd->arg + cmd->arg_len;
    if (*cur < *end && **cur != ' ') {
        error_reply(s, "501 5.5.4 Syntax: %s:<address> [parameters]", verb);
        return 0;
    }
    return 1;
}

static int check_mail(session *s, const smtp_command *cmd, command_args *a)
{
    if (!need_helo(s))
        return 0;
    if (s->cfg->tls_required && !s->tls) {
        error_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
        return 0;
    }
    if (s->cfg->auth_required && s->user == NULL) {
        error_reply(s, "530 5.7.0 Authentication required");
        return 0;
    }
    if (s->tx != NULL) {
        error_reply(s, "503 5.5.1 Error: nested MAIL command");
        return 0;
    }
    const char *cur, *end;
    if (!path_argument(s, cmd, 1, &a->path, &cur, &end))
        return 0;
    smtp_params_error err;
    if (!params_ok(s, smtp_parse_mail_params(cur, end, s->esmtp, s->max_size, &a->params, &err), &err))
        return 0;
    if (a->path.has_utf8 && !a->params.smtputf8) { /* RFC 6531 section 3.5 */
        found(s, FINDING_SMTPUTF8_NOT_DECLARED, cmd->verb, command_len(cmd));
        reply(s, "553 5.6.7 Error: non-ASCII sender address needs the SMTPUTF8 parameter");
        return 0;
    }
    /* RFC 1870 section 6.2: no room for now. A declared SIZE is reserved (below), so that the transactions
     * let in can finish even when many large messages arrive at once. */
    if (inflight_full(s, a->params.size)) {
        reply(s, "452 4.3.1 Error: insufficient system storage");
        return 0;
    }
    a->f.sender = a->path.mailbox;
    return 1;
}

static void cmd_mail(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd;
    const smtp_path *path = &a->path;
    uint64_t declared = a->params.size;

    store_msg *m = store_msg_new();
    if (m == NULL || store_msg_set_sender(m, path->mailbox, path->len) != 0 ||
        store_msg_set_helo(m, s->helo, strlen(s->helo)) != 0 ||
        (s->user != NULL && store_msg_set_auth_user(m, s->user, strlen(s->user)) != 0)) {
        store_msg_unref(m);
        reply(s, "451 4.3.0 Error: out of memory");
        return;
    }
    snprintf(m->client, sizeof(m->client), "%s", s->client);
    snprintf(m->listener, sizeof(m->listener), "%s", s->listener);
    m->session_id = (int64_t)s->id;
    m->body_type = a->params.body_type;
    m->smtputf8 = a->params.smtputf8;
    m->declared_size = declared;
    m->tls_version = s->tls ? s->tls_version_static : NULL;
    m->tls_cipher = s->tls ? s->tls_cipher_static : NULL;
    m->started_ms = s->host->wall_ms(s->ctx);
    /* A declared SIZE is a good first guess for the buffer; never more than the limit. */
    if (declared > 0)
        (void)store_msg_reserve(m, (size_t)declared + 2);
    s->tx = m;
    s->rcpt_tried = 0;
    (void)charge_inflight(s, declared); /* checked above */
    set_state(s, ST_MAIL);
    reply(s, "250 2.1.0 Sender <%s> OK", path->mailbox);
}

static int check_rcpt(session *s, const smtp_command *cmd, command_args *a)
{
    if (s->tx == NULL) {
        error_reply(s, "503 5.5.1 Error: need MAIL command");
        return 0;
    }
    if (s->tx_bdat) {
        error_reply(s, "503 5.5.1 Error: RCPT not allowed after BDAT");
        return 0;
    }
    const char *cur, *end;
    if (!path_argument(s, cmd, 0, &a->path, &cur, &end))
        return 0;
    smtp_params_error err;
    if (!params_ok(s, smtp_parse_rcpt_params(cur, end, s->esmtp, &err), &err))
        return 0;
    if (a->path.has_utf8 && !s->tx->smtputf8) {
        found(s, FINDING_SMTPUTF8_NOT_DECLARED, cmd->verb, command_len(cmd));
        reply(s, "553 5.6.7 Error: non-ASCII recipient address needs SMTPUTF8 in MAIL FROM");
        return 0;
    }
    if (s->tx->nrcpts >= s->max_rcpts) { /* RFC 5321 4.5.3.1.10 */
        reply(s, "452 4.5.3 Error: too many recipients");
        return 0;
    }
    a->f.rcpt = a->path.mailbox;
    return 1;
}

static void cmd_rcpt(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd;
    SF_ASSERT(s->tx != NULL); /* check_rcpt */
    if (store_msg_add_rcpt(s->tx, a->path.mailbox, a->path.len) != 0) {
        reply(s, "451 4.3.0 Error: out of memory");
        return;
    }
    set_state(s, ST_RCPT);
    reply(s, "250 2.1.5 Recipient <%s> OK", a->path.mailbox);
}

/* transaction_ready - a transaction with recipients exists; reply with the right error otherwise */
static int transaction_ready(session *s)
{
    if (s->tx == NULL) {
        error_reply(s, "503 5.5.1 Error: need MAIL command");
        return 0;
    }
    if (s->tx->nrcpts == 0) {
        error_reply(s, "554 5.5.1 Error: no valid recipients");
        return 0;
    }
    return 1;
}

static int check_data(session *s, const smtp_command *cmd, command_args *a)
{
    (void)a;
    /* Pipelined behind its RCPTs (RFC 2920 3.1), DATA could not know they would all be refused. */
    if (s->tx != NULL && s->tx->nrcpts == 0 && s->rcpt_tried && !s->prev_followed)
        found(s, FINDING_DATA_AFTER_ALL_RCPT_REFUSED, cmd->verb, command_len(cmd));
    if (!need_no_arg(s, cmd, "DATA") || !transaction_ready(s))
        return 0;
    if (s->tx_bdat) {
        error_reply(s, "503 5.5.1 Error: DATA not allowed after BDAT");
        return 0;
    }
    if (s->tx->body_type != NULL && strcmp(s->tx->body_type, "BINARYMIME") == 0) { /* RFC 3030 section 3 */
        error_reply(s, "503 5.5.1 Error: BODY=BINARYMIME needs BDAT, not DATA");
        return 0;
    }
    if (s->tx_charged == 0 && inflight_full(s, 1)) { /* nothing reserved, nothing left */
        reply(s, "452 4.3.1 Error: insufficient system storage");
        return 0;
    }
    return 1;
}

static void cmd_data(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd, (void)a;
    smtp_data_init(&s->data);
    findings_text_scan_init(&s->data_scan);
    set_state(s, ST_DATA);
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_bdat(session *s, const smtp_command *cmd, command_args *a)
{
    (void)a;
    uint64_t size;
    int last;
    if (smtp_parse_bdat(cmd->arg, cmd->arg_len, &size, &last) != 0) {
        /* Without a size the chunk cannot be skipped: what follows is read as commands. */
        error_reply(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
        return;
    }
    /* RFC 3030 section 2: a rejected chunk is still read in full before the reply. */
    s->bdat_reject = NULL;
    s->bdat_reject_raw = 0;
    if (!s->esmtp)
        s->bdat_reject = "503 5.5.1 Error: BDAT needs EHLO";
    else if (s->tx == NULL)
        s->bdat_reject = "503 5.5.1 Error: need MAIL command";
    else if (s->tx->nrcpts == 0)
        s->bdat_reject = "554 5.5.1 Error: no valid recipients";
    else if (size > s->max_size - s->tx->size)
        s->tx_oversize = 1;
    if (s->bdat_reject == NULL && !s->tx_bdat) { /* the first chunk is the DATA stage */
        fault_facts f;
        facts(s, &f);
        gate_result g = gate(s, FAULT_STAGE_DATA, &f, RESUME_LINE);
        if (g == GATE_PAUSED)
            return;
        if (g == GATE_TAKEN) {
            if (s->state == ST_CLOSING || s->state == ST_HANG)
                return;
            /* The reply is out already; the chunk is still read and dropped, and answered by nothing more. */
            s->bdat_reject = "";
            s->bdat_reject_raw = 1;
        }
    }
    if (s->tx != NULL && s->bdat_reject == NULL && !s->tx_bdat) {
        s->tx_bdat = 1;
        findings_text_scan_init(&s->data_scan); /* the chunks make one message content */
    }
    s->bdat_size = s->bdat_left = size;
    s->bdat_last = last;
    set_state(s, ST_BDAT);
    if (size == 0)
        bdat_chunk_done(s, 0);
}

/* bdat_chunk_done - all bytes of a chunk are in */
static void bdat_chunk_done(session *s, uint64_t size)
{
    if (s->bdat_reject != NULL) {
        if (!s->bdat_reject_raw)
            error_reply(s, "%s", s->bdat_reject);
        s->bdat_reject = NULL;
        s->bdat_reject_raw = 0;
        if (s->state == ST_BDAT)
            set_state(s, command_state(s));
        return;
    }
    if (s->tx_oversize || s->tx_oom || s->bdat_last) {
        /* Of chunked content only 8-bit bytes are judged, not its line endings (docs/client-checks.md). */
        eightbit_finding(s);
        end_of_message(s); /* rejects the oversize transaction, or commits it */
        return;
    }
    set_state(s, ST_RCPT);
    reply(s, "250 2.0.0 %llu octets received", (unsigned long long)size);
}

/* -- the other commands ------------------------------------------------------------------------------- */

static int check_rset(session *s, const smtp_command *cmd, command_args *a)
{
    (void)a;
    return need_no_arg(s, cmd, "RSET");
}

static void cmd_rset(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd, (void)a;
    reset_transaction(s);
    reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd, (void)a; /* RFC 5321 4.1.1.9: a parameter is allowed and ignored */
    reply(s, "250 2.0.0 Ok");
}

static int check_vrfy(session *s, const smtp_command *cmd, command_args *a)
{
    (void)a;
    if (cmd->arg_len > 0)
        return 1;
    error_reply(s, "501 5.5.4 Syntax: VRFY address");
    return 0;
}

static void cmd_vrfy(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd, (void)a;
    /* RFC 5321 3.5.3: 252 when the server will not verify but accepts mail for the address. */
    reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd, (void)a;
    reply(s, "502 5.5.1 Error: EXPN not available");
}

static void cmd_help(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd, (void)a;
    reply(s, "214-2.0.0 smtpfault, a fake SMTP server for fault injection");
    reply(s, "214-2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT");
    reply(s, "214 2.0.0 End of HELP info");
}

static void cmd_quit(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd, (void)a;
    reply(s, "221 2.0.0 %s Bye", s->hostname);
}

/* quit_after - QUIT ends the session whatever the reply (RFC 5321 4.1.1.10), unless a fault hangs it */
static void quit_after(session *s)
{
    if (s->state != ST_HANG && !(s->waiting && s->pending))
        close_session(s, "client quit", 0);
}

/* check_unknown - a verb no row has: the unknown stage matches on it */
static int check_unknown(session *s, const smtp_command *cmd, command_args *a)
{
    (void)s;
    size_t n = cmd->verb_len < sizeof(a->verb) - 1 ? cmd->verb_len : sizeof(a->verb) - 1;
    memcpy(a->verb, cmd->verb, n);
    a->verb[n] = '\0';
    a->f.verb = a->verb;
    return 1;
}

static void cmd_unknown(session *s, const smtp_command *cmd, command_args *a)
{
    (void)cmd, (void)a;
    error_reply(s, "500 5.5.2 Error: command not recognized");
}

#define STAGE_OWN FAULT_STAGE_COUNT /* the command asks the engine itself, later (see its row) */

/*
 * command_def - one command's contract, as OpenSMTPD's commands[]: its verb, the fault stage asked once
 * its checks pass, its longest line, its checks, what it does, and what must happen whatever the gate
 * decided (QUIT closes).
 */
typedef struct command_def {
    const char *verb;
    size_t verb_len;
    fault_stage stage;
    size_t max_line; /* longest command line accepted, CRLF included */
    command_check check;
    command_proceed proceed;
    void (*after)(session *s);
} command_def;

/* COMMAND(verb, stage, limit, check, proceed, after) - the verb's length is counted by the compiler */
#define COMMAND(verb, stage, limit, check, proceed, after)          \
    {                                                               \
        verb, sizeof(verb) - 1, stage, limit, check, proceed, after \
    }
static const command_def commands[] = {
    COMMAND("EHLO", FAULT_STAGE_EHLO, SMTP_COMMAND_LINE_MAX, check_ehlo, cmd_ehlo, NULL),
    COMMAND("HELO", FAULT_STAGE_EHLO, SMTP_COMMAND_LINE_MAX, check_helo, cmd_helo, NULL),
    COMMAND("STARTTLS", FAULT_STAGE_STARTTLS, SMTP_COMMAND_LINE_MAX, check_starttls, cmd_starttls, NULL),
    /* The auth stage is asked once the SASL exchange has a result (auth_finish), not at the command. */
    COMMAND("AUTH", STAGE_OWN, SMTP_AUTH_LINE_MAX, NULL, cmd_auth, NULL),
    COMMAND("MAIL", FAULT_STAGE_MAIL, SMTP_COMMAND_LINE_MAX, check_mail, cmd_mail, NULL),
    COMMAND("RCPT", FAULT_STAGE_RCPT, SMTP_COMMAND_LINE_MAX, check_rcpt, cmd_rcpt, NULL),
    COMMAND("DATA", FAULT_STAGE_DATA, SMTP_COMMAND_LINE_MAX, check_data, cmd_data, NULL),
    /* BDAT's first chunk is the data stage (cmd_bdat): a rejected chunk is read before its reply. */
    COMMAND("BDAT", STAGE_OWN, SMTP_COMMAND_LINE_MAX, NULL, cmd_bdat, NULL),
    COMMAND("RSET", FAULT_STAGE_RSET, SMTP_COMMAND_LINE_MAX, check_rset, cmd_rset, NULL),
    COMMAND("NOOP", FAULT_STAGE_NOOP, SMTP_COMMAND_LINE_MAX, NULL, cmd_noop, NULL),
    COMMAND("VRFY", FAULT_STAGE_VRFY, SMTP_COMMAND_LINE_MAX, check_vrfy, cmd_vrfy, NULL),
    /* EXPN shares VRFY's stage: the profile vocabulary has no expn stage (faults/fault_stage.h). */
    COMMAND("EXPN", FAULT_STAGE_VRFY, SMTP_COMMAND_LINE_MAX, NULL, cmd_expn, NULL),
    COMMAND("HELP", FAULT_STAGE_HELP, SMTP_COMMAND_LINE_MAX, NULL, cmd_help, NULL),
    COMMAND("QUIT", FAULT_STAGE_QUIT, SMTP_COMMAND_LINE_MAX, NULL, cmd_quit, quit_after),
};
/* A verb no row has; its line limit is never reached (the line was framed at the longest limit). */
static const command_def unknown_def =
    COMMAND("", FAULT_STAGE_UNKNOWN, SMTP_AUTH_LINE_MAX, check_unknown, cmd_unknown, NULL);
#undef COMMAND

static const command_def *find_command(const smtp_command *cmd)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (cmd->verb_len == commands[i].verb_len &&
            strncasecmp(cmd->verb, commands[i].verb, cmd->verb_len) == 0)
            return &commands[i];
    return NULL;
}

/* run_command - the contract of one row: check, then the fault gate, then proceed (then after) */
static void run_command(session *s, const command_def *def, const smtp_command *cmd)
{
    command_args a;
    facts(s, &a.f);
    if (def->check != NULL && !def->check(s, cmd, &a))
        return;
    gate_result g = def->stage == STAGE_OWN ? GATE_PROCEED : gate(s, def->stage, &a.f, RESUME_LINE);
    if (g == GATE_PROCEED)
        def->proceed(s, cmd, &a);
    if (def->after != NULL)
        def->after(s);
}

/*
 * log_command - a command line into the transcript, credentials masked: an AUTH initial response and the
 * lines of a SASL exchange carry passwords (base64 is not a disguise), so only their length is shown.
 */
static void log_command(session *s, const char *line, size_t len)
{
    if (s->state == ST_AUTH) {
        eventf(s, LOG_INFO, "command", "(SASL response, %zu bytes)", len);
        return;
    }
    if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
        const char *sp = memchr(line + 5, ' ', len - 5);
        if (sp != NULL) {
            eventf(s, LOG_INFO, "command", "%.*s (initial response, %zu bytes)", (int)(sp - line), line,
                   len - (size_t)(sp + 1 - line));
            return;
        }
    }
    event(s, LOG_INFO, "command", line, len);
}

/* verb_is - the line starts with verb, followed by a space or nothing */
static int verb_is(const char *line, size_t len, const char *verb)
{
    size_t n = strlen(verb);
    return len >= n && strncasecmp(line, verb, n) == 0 && (len == n || line[n] == ' ');
}

/* line_findings - what one command line, seen for the first time, shows of the client */
static void line_findings(session *s, const char *line, size_t len, size_t raw_len)
{
    /* A SASL response is a credential: its findings do not show it (found() cuts AUTH lines itself). */
    static const char sasl[] = "(SASL response)";
    const char *shown = s->state == ST_AUTH ? sasl : line;
    size_t shown_len = s->state == ST_AUTH ? sizeof(sasl) - 1 : len;
    finding_id ending = findings_line_ending(line, len, raw_len);
    if (ending != FINDING_COUNT)
        found(s, ending, shown, shown_len);
    s->prev_followed = s->last_followed;
    s->last_followed = s->line_followed;
    if (s->state == ST_AUTH)
        return; /* a SASL response: not a command, and a credential */
    if (s->line_followed && !s->pipelining_offered)
        found(s, FINDING_PIPELINING_NOT_OFFERED, shown, shown_len);
    if (s->tls)
        s->spoke_over_tls = 1;
    if (s->tls_fresh) {
        s->tls_fresh = 0;
        if (!verb_is(line, len, "EHLO") && !verb_is(line, len, "HELO") && !verb_is(line, len, "QUIT"))
            found(s, FINDING_NO_EHLO_AFTER_STARTTLS, shown, shown_len);
    }
    if (s->tx != NULL && verb_is(line, len, "RCPT"))
        s->rcpt_tried = 1;
}

/* handle_line - one command line, terminator removed */
static void handle_line(session *s, const char *line, size_t len, size_t raw_len)
{
    if (!s->pending) { /* a line run again after a delay is logged once */
        log_command(s, line, len);
        line_findings(s, line, len, raw_len);
    }
    if (s->state == ST_AUTH) {
        auth_line(s, line, len);
        return;
    }
    if (memchr(line, '\0', len) != NULL) {
        error_reply(s, "500 5.5.2 Error: NUL character in command");
        return;
    }
    smtp_command cmd;
    smtp_split_command(line, len, &cmd);
    const command_def *def = find_command(&cmd);
    if (s->state == ST_REJECTED) { /* RFC 5321 section 3.1: 503 to everything but QUIT */
        if (def != NULL && def->after == quit_after) {
            reply(s, "221 2.0.0 %s Bye", s->hostname);
            close_session(s, "client quit", 0);
        } else {
            error_reply(s,
                        "503 5.5.1 Error: the server refused service at the greeting; only QUIT is accepted");
        }
        return;
    }
    if (def == NULL) {
        run_command(s, &unknown_def, &cmd);
        return;
    }
    if (raw_len > def->max_line) {
        error_reply(s, "500 5.5.2 Error: line too long (limit %zu octets, RFC 5321 4.5.3.1.4)",
                    def->max_line);
        return;
    }
    run_command(s, def, &cmd);
}

/* -- input ------------------------------------------------------------------------------------------------
 */

static int accepts_input(const session *s)
{
    return !s->waiting && s->state != ST_COMMIT && s->state != ST_CLOSING && s->state != ST_INIT &&
           s->state != ST_TLS && s->state != ST_HANG;
}

/* content_findings - what the DATA content just received shows of the client */
static void content_findings(session *s)
{
    static const char what[] = "(message content)";
    if (s->data_scan.bare_lf)
        found(s, FINDING_BARE_LF, what, sizeof(what) - 1);
    if (s->data_scan.bare_cr)
        found(s, FINDING_BARE_CR, what, sizeof(what) - 1);
    eightbit_finding(s);
}

/* consume - process what can be processed of buf; returns the bytes taken */
static size_t consume(session *s, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len && accepts_input(s)) {
        const char *p = buf + off;
        size_t avail = len - off;
        if (s->state == ST_DATA) {
            int done;
            size_t took = smtp_data_decode(&s->data, p, avail, content_sink, s, &done);
            findings_text_scan_feed(&s->data_scan, p, took);
            off += took;
            if (done) {
                content_findings(s);
                end_of_message(s);
                step_done(s);
            }
            continue;
        }
        if (s->state == ST_BDAT) {
            size_t take = s->bdat_left < avail ? (size_t)s->bdat_left : avail;
            if (s->bdat_reject == NULL && s->tx != NULL) {
                content_sink(s, p, take);
                findings_text_scan_feed(&s->data_scan, p, take);
            }
            off += take;
            s->bdat_left -= take;
            if (s->bdat_left == 0) {
                bdat_chunk_done(s, s->bdat_size);
                step_done(s);
            }
            continue;
        }
        if (s->discarding) {
            const char *lf = memchr(p, '\n', avail);
            off = lf ? (size_t)(lf - buf) + 1 : len;
            s->discarding = lf == NULL;
            continue;
        }
        size_t line_len, used;
        smtp_line_status st = smtp_find_line(p, avail, SMTP_AUTH_LINE_MAX, &line_len, &used);
        if (st == SMTP_LINE_NEED_MORE)
            break;
        if (st == SMTP_LINE_TOO_LONG) {
            /* SASL lines (the AUTH command and its responses) may be longer than commands: RFC 4954 4. */
            int sasl = s->state == ST_AUTH || (avail >= 5 && strncasecmp(p, "AUTH ", 5) == 0);
            log_command(s, p, avail);
            s->discarding = 1;
            if (s->state == ST_AUTH)
                set_state(s, command_state(s));
            if (sasl)
                error_reply(s, "500 5.5.2 Error: line too long (limit %d octets, RFC 4954 section 4)",
                            SMTP_AUTH_LINE_MAX);
            else
                error_reply(s, "500 5.5.2 Error: line too long (limit %d octets, RFC 5321 4.5.3.1.4)",
                            SMTP_COMMAND_LINE_MAX);
            continue;
        }
        s->line_followed = avail > used;
        handle_line(s, p, line_len, used);
        if (s->waiting && s->pending && s->resume == RESUME_LINE)
            break; /* the line runs again once the delay is over */
        off += used;
        /* A BDAT chunk being taken in is answered once it is read: that reply ends the step. */
        if (s->state != ST_BDAT || s->bdat_reject != NULL)
            step_done(s);
    }
    return off;
}

/* keep - save unprocessed input; -1 when it would pass the buffer limit */
static int keep(session *s, const char *data, size_t len)
{
    return bytebuf_append(&s->in, data, len); /* its bound is SESSION_INBUF_MAX */
}

static void drop_input(session *s)
{
    bytebuf_release(&s->in);
}

/* process_input - run the saved input through the state machine */
static void process_input(session *s)
{
    if (s->in.len == 0)
        return;
    s->feeding = 1;
    size_t used = consume(s, s->in.data, s->in.len);
    s->feeding = 0;
    SF_ASSERT(used <= s->in.len);
    if (used < s->in.len)
        bytebuf_consume(&s->in, used);
    else
        drop_input(s); /* idle sessions hold no input buffer */
}

void session_feed(session *s, const char *data, size_t len)
{
    if (s->state == ST_CLOSING || s->state == ST_HANG)
        return;
    if (s->in.len == 0) {
        /* The common case: straight from the read buffer, keeping only a partial line. */
        s->feeding = 1;
        size_t used = consume(s, data, len);
        s->feeding = 0;
        data += used;
        len -= used;
    } else if (keep(s, data, len) == 0) {
        process_input(s);
        return;
    }
    if (len > 0 && s->state != ST_CLOSING && s->state != ST_HANG && keep(s, data, len) != 0) {
        reply(s, "421 4.7.0 %s Error: too much input while busy, closing connection", s->hostname);
        close_session(s, "input buffer overflow", 0);
    }
}

/* -- lifecycle ------------------------------------------------------------------------------------------- */

session *session_new(const session_config *cfg, const session_host *host, void *ctx, const session_info *info)
{
    session *s = calloc(1, sizeof(*s));
    if (s != NULL)
        bytebuf_init(&s->in, SESSION_INBUF_INITIAL, SESSION_INBUF_MAX);
    if (s == NULL)
        return NULL;
    s->id = info->id;
    s->cfg = cfg;
    s->host = host;
    s->ctx = ctx;
    s->state = ST_INIT;
    s->faults = info->faults;
    snprintf(s->client, sizeof(s->client), "%s", info->client);
    snprintf(s->listener, sizeof(s->listener), "%s", info->listener);

    s->hostname = cfg->hostname;
    s->max_size = cfg->max_message_size;
    s->max_rcpts = cfg->max_recipients;
    s->mechs = cfg->auth_mechs;
    s->users = cfg->users;
    if (s->faults != NULL) {
        /* The profile the connection started under applies for the whole session. */
        const fault_settings *fs = fault_profile_settings(fault_run_profile(fault_conn_run(s->faults)));
        if (fs->hostname)
            s->hostname = fs->hostname;
        s->greeting = fs->greeting;
        s->banner = fs->banner;
        s->ehlo_text = fs->ehlo_text;
        if (fs->size)
            s->max_size = fs->size;
        if (fs->max_recipients)
            s->max_rcpts = fs->max_recipients;
        if (fs->auth_mechs && s->mechs)
            s->mechs = fs->auth_mechs;
        s->ehlo_remove = fs->ehlo_remove;
        if (fs->has_users) {
            s->users.names = fs->user_names;
            s->users.passwords = fs->user_passwords;
            s->users.n = fs->nusers;
        }
    }
    return s;
}

/* greet - the greeting stage, and the 220 (RFC 2034 section 4: no enhanced code on the greeting) */
static void greet(session *s)
{
    fault_facts f;
    facts(s, &f);
    gate_result g = gate(s, FAULT_STAGE_GREETING, &f, RESUME_GREETING);
    if (g == GATE_PAUSED)
        return;
    if (g == GATE_TAKEN) {
        const fault_action *a = s->decision.act;
        /* A refusal that does not close: RFC 5321 section 3.1, answer 503 until QUIT. */
        if (s->state == ST_INIT)
            set_state(s, a->reply != NULL && a->reply_code >= 400 ? ST_REJECTED : ST_GREETED);
        step_done(s);
        return;
    }
    if (s->banner != NULL) {
        send_filled(s, &f, "220 ", s->banner);
    } else if (s->greeting != NULL) {
        char head[REPLY_MAX];
        snprintf(head, sizeof(head), "220 %s ", s->hostname);
        send_filled(s, &f, head, s->greeting);
    } else {
        reply(s, "220 %s ESMTP smtpfault", s->hostname);
    }
    if (s->state == ST_INIT)
        set_state(s, ST_GREETED);
    step_done(s);
}

void session_start(session *s)
{
    greet(s);
}

void session_resume(session *s)
{
    if (!s->waiting)
        return;
    s->waiting = 0;
    switch (s->resume) {
    case RESUME_GREETING:
        greet(s);
        break;
    case RESUME_AUTH:
        auth_finish(s);
        step_done(s);
        break;
    case RESUME_DATA_END:
        end_of_message(s);
        step_done(s);
        break;
    case RESUME_LINE:     /* process_input runs the line again */
    case RESUME_CONTINUE: /* a drip ended */
        break;
    }
    if (!s->feeding)
        process_input(s);
}

void session_tls_established(session *s, const char *version, const char *cipher)
{
    s->tls = 1;
    s->tls_version_static = version;
    s->tls_cipher_static = cipher;
    snprintf(s->tls_version, sizeof(s->tls_version), "%s", version ? version : "?");
    snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", cipher ? cipher : "?");
    if (s->state != ST_TLS)
        return;        /* implicit TLS, before the greeting */
    if (s->in.len > 0) /* RFC 3207 section 5: plaintext after STARTTLS could be an injection */
        eventf(s, LOG_INFO, "tls", "discarded %zu bytes the client sent after STARTTLS, before the handshake",
               s->in.len);
    drop_input(s);
    s->discarding = 0;
    free(s->helo);
    s->helo = NULL;
    s->esmtp = 0;
    free(s->user);
    s->user = NULL;
    s->pipelining_offered = 0;
    s->tls_fresh = 1;
    set_state(s, ST_GREETED);
}

void session_tls_abandoned(session *s)
{
    if (s->state == ST_TLS)
        set_state(s, command_state(s));
}

int session_wants_input(const session *s)
{
    return accepts_input(s);
}

int session_discards_input(const session *s)
{
    return s->state == ST_HANG;
}

int session_in_transaction(const session *s)
{
    return s->tx != NULL || s->state == ST_DATA || s->state == ST_BDAT || s->state == ST_COMMIT;
}

void session_timeout(session *s)
{
    if (s->state == ST_CLOSING)
        return;
    if (s->state == ST_HANG) {
        close_session(s, "idle timeout while hanging", 0);
        return;
    }
    reply(s, "421 4.4.2 %s Error: timeout exceeded, closing connection", s->hostname);
    close_session(s, "idle timeout", 0);
}

void session_shutdown(session *s)
{
    if (s->state == ST_CLOSING)
        return;
    s->truncating = 0;
    s->override = NULL;
    reply(s, "421 4.3.2 %s Service shutting down, closing connection", s->hostname);
    close_session(s, "server shutdown", 0);
}

const char *session_state_name(const session *s)
{
    return state_names[s->state];
}

const char *session_user(const session *s)
{
    return s->user;
}

const char *session_helo(const session *s)
{
    return s->helo;
}

void session_free(session *s)
{
    if (s == NULL)
        return;
    release_inflight(s);
    store_msg_unref(s->tx);
    free(s->helo);
    free(s->user);
    bytebuf_release(&s->in);
    free(s->override_buf);
    findings_free(&s->findings);
    free(s);
}

void session_finding(session *s, finding_id id, const char *line, size_t len)
{
    found(s, id, line, len);
}

void session_story_finding(session *s, const finding *x)
{
    /* Whatever protocol the client speaks here, its tries are its story's (not_smtp does not apply). */
    for (uint32_t i = 0; i < x->count; i++)
        record(s, x->id, x->first_ms, x->line, x->line_len);
}

void session_not_smtp(session *s)
{
    s->not_smtp = 1;
}

findings *session_findings(session *s)
{
    return &s->findings;
}

int session_spoke_over_tls(const session *s)
{
    return s->spoke_over_tls;
}

int session_awaits_command(const session *s)
{
    return accepts_input(s);
}

void session_input_after_close(session *s, const char *data, size_t len)
{
    if (!s->sent_421)
        return;
    /* Each line but QUIT (harmless, and what many clients send on any error) was a command lost. */
    for (const char *p = data, *end = data + len; p < end;) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        size_t n = lf ? (size_t)(lf - p) : (size_t)(end - p);
        size_t text = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
        if (text > 0 && !verb_is(p, text, "QUIT")) {
            found(s, FINDING_COMMAND_AFTER_421, p, text);
            return;
        }
        p += n + 1;
    }
}
