/*
 * conn_tls.c - a connection's TLS phase: the tls_handshake fault stage and what its actions do (a delay,
 * a hang, an alert, raw bytes, plaintext, a close), the handshake, and the encrypted channel after it.
 *
 * It owns the phase machine and the wolfSSL object (tls.c) of one connection; conn.c owns the socket and
 * hands it what it reads while the phase is not plaintext, and what the session says while it is active.
 */
#include "conn_tls.h"

#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "fault_gate.h"
#include "log.h"
#include "sf_assert.h"

#define TLS_ALERT_RECORD_MAX 7 /* an alert record: header and two bytes */

/* send_tls_output - whatever wolfSSL produced (handshake records, alerts, application data) */
static void send_tls_output(conn *c)
{
    size_t len;
    char *data = tls_conn_take_output(c->tls.ssl, &len);
    conn_queue_write(c, data, len);
}

static void tls_fail(conn *c, const char *why)
{
    conn_eventf(c, LOG_INFO, "tls", "handshake failed: %s", why);
    if (c->tls.ssl != NULL)
        send_tls_output(c); /* the alert wolfSSL made, if any */
    conn_end_gracefully(c, "TLS handshake failed");
}

/* tls_established - the handshake is done: the session starts, or restarts after STARTTLS */
static void tls_established(conn *c)
{
    c->tls.phase = TLS_PHASE_ACTIVE;
    const char *version = tls_conn_version(c->tls.ssl), *cipher = tls_conn_cipher(c->tls.ssl);
    conn_eventf(c, LOG_INFO, "tls", "%s %s%s", version, cipher,
                tls_conn_resumed(c->tls.ssl) ? " (resumed)" : "");
    session_tls_established(c->s, version, cipher);
    if (c->implicit_tls)
        session_start(c->s);
}

/* tls_pump - run the ciphertext read so far through the handshake and then to the session */
static void tls_pump(conn *c)
{
    if (c->tls.phase == TLS_PHASE_HANDSHAKE) {
        tls_status st = tls_conn_handshake(c->tls.ssl);
        send_tls_output(c);
        if (st == TLS_WANT)
            return;
        if (st == TLS_FAILED) {
            tls_fail(c, tls_conn_error(c->tls.ssl));
            return;
        }
        tls_established(c);
    }
    while (c->tls.phase == TLS_PHASE_ACTIVE && c->phase == CONN_OPEN) {
        int n = tls_conn_read(c->tls.ssl, c->srv->plain_buf, sizeof(c->srv->plain_buf));
        if (n == 0)
            break;
        if (n == -1) {
            if (c->s != NULL && session_spoke_over_tls(c->s))
                conn_findings_client_left(c); /* a close_notify without QUIT is leaving without QUIT too */
            conn_close(c, "client sent TLS close_notify", 0);
            return;
        }
        if (n < 0) {
            conn_eventf(c, LOG_INFO, "tls", "%s", tls_conn_error(c->tls.ssl));
            conn_close(c, "TLS error", 0);
            return;
        }
        if (session_discards_input(c->s))
            continue;
        session_feed(c->s, c->srv->plain_buf, (size_t)n);
        conn_flush(c); /* before the next record: output stays in order with what the session decides */
    }
}

/* tls_policy_for - the profile's TLS settings, then the rule's */
static tls_policy tls_policy_for(const conn *c, const fault_action *a)
{
    tls_policy p = TLS_POLICY_DEFAULT;
    const fault_settings *fs = fault_profile_settings(fault_run_profile(fault_conn_run(c->faults)));
    if (fs->certificate >= 0)
        p.cert = (cert_kind)fs->certificate;
    if (fs->tls_min >= 0) {
        p.min = (tls_version)fs->tls_min;
        p.max = (tls_version)fs->tls_max;
    }
    if (a != NULL && a->certificate >= 0)
        p.cert = (cert_kind)a->certificate;
    if (a != NULL && a->tls_min >= 0) {
        p.min = (tls_version)a->tls_min;
        p.max = (tls_version)a->tls_max;
    }
    return p;
}

/* tls_decision - the fault engine at the tls_handshake stage (the decision lives in the server) */
static const fault_action *tls_decision(conn *c)
{
    fault_facts f;
    memset(&f, 0, sizeof(f));
    if (c->s != NULL) {
        f.helo = session_helo(c->s);
        f.user = session_user(c->s);
        f.authenticated = f.user != NULL;
    }
    return fault_gate_decide(c->faults, FAULT_STAGE_TLS_HANDSHAKE, &f, server_now_ms(), &c->srv->decision,
                             conn_event, c);
}

/* tls_start - begin the handshake under policy (the decision's delay, if any, is over) */
static void tls_start(conn *c, const fault_action *a)
{
    if (a != NULL && a->hang) {
        c->tls.phase = TLS_PHASE_STALLED;
        return;
    }
    if (a != NULL && a->tls_plaintext) {
        c->tls.phase = TLS_PHASE_NONE;
        /* The client goes on with its handshake, which the session would read as commands. */
        session_not_smtp(c->s);
        if (c->implicit_tls)
            session_start(c->s); /* the greeting in plain text, on the TLS port */
        else
            session_tls_abandoned(c->s); /* after the 220, the server goes on in plain text */
        return;
    }
    if (a != NULL && a->raw != NULL) {
        /* Sent as the answer to the ClientHello: written at once after a STARTTLS 220, the bytes would
         * reach the client with the 220 and be read as plaintext, never by its TLS layer. */
        c->tls.phase = TLS_PHASE_RAW;
        c->tls.raw = a; /* a rule's action: it lives as long as the profile we hold */
        return;
    }
    if (a != NULL && a->close != FAULT_CLOSE_NONE) {
        /* After the STARTTLS 220, the RST answers the ClientHello; on smtps it comes before. */
        c->reset_at_end = a->close == FAULT_CLOSE_RST;
        c->reset_after_input = c->reset_at_end && !c->implicit_tls;
        c->reset_in_mark = c->bytes_in;
        conn_end_gracefully(c, c->reset_at_end ? "fault: reset at the TLS handshake"
                                               : "fault: closed at the TLS handshake");
        return;
    }
    if (a != NULL && a->tls_alert >= 0) {
        c->tls.phase = TLS_PHASE_ALERT;
        c->tls.alert = a->tls_alert;
        return;
    }
    tls_policy p = tls_policy_for(c, a);
    char err[200];
    c->tls.ssl = tls_conn_new(c->srv->tls, &p, err, sizeof(err));
    if (c->tls.ssl == NULL) {
        conn_eventf(c, LOG_WARN, "tls", "cannot start TLS: %s", err);
        conn_end_gracefully(c, "TLS set-up failed");
        return;
    }
    c->tls.phase = TLS_PHASE_HANDSHAKE;
}

void conn_tls_begin(conn *c)
{
    const fault_action *a = tls_decision(c);
    if (a != NULL && a->delay_ms > 0) {
        c->tls.phase = TLS_PHASE_STALLED; /* until the delay is over; ciphertext waits in the kernel */
        c->tls.pending = a;               /* a rule's action: it lives as long as the profile we hold */
        conn_timer_set(c, TIMER_TLS_DELAY, a->delay_ms);
        return;
    }
    tls_start(c, a);
}

void conn_tls_delay_over(conn *c)
{
    const fault_action *a = c->tls.pending;
    c->tls.pending = NULL;
    c->tls.phase = TLS_PHASE_NONE;
    conn_timer_idle(c);
    tls_start(c, a);
}

int conn_tls_feed(conn *c, const char *data, size_t len)
{
    switch (c->tls.phase) {
    case TLS_PHASE_NONE:    /* conn.c feeds plaintext to the session itself */
    case TLS_PHASE_PENDING: /* cannot happen: the handshake starts in the same turn as the 220 */
    case TLS_PHASE_STALLED:
        return 0;
    case TLS_PHASE_ALERT: {
        unsigned char rec[TLS_ALERT_RECORD_MAX];
        size_t n = tls_alert_record(c->tls.alert, rec);
        char *out = malloc(n);
        if (out != NULL) {
            memcpy(out, rec, n);
            conn_queue_write(c, out, n);
        }
        conn_eventf(c, LOG_INFO, "tls", "refused the ClientHello with alert %s",
                    fault_tls_alert_name(c->tls.alert));
        c->tls.phase = TLS_PHASE_STALLED;
        conn_end_gracefully(c, "fault: TLS alert");
        return 1;
    }
    case TLS_PHASE_RAW: {
        char *raw = malloc(c->tls.raw->raw_len);
        if (raw != NULL) {
            memcpy(raw, c->tls.raw->raw, c->tls.raw->raw_len);
            conn_queue_write(c, raw, c->tls.raw->raw_len);
        }
        c->tls.phase = TLS_PHASE_STALLED;
        conn_end_gracefully(c, "fault: raw bytes instead of a TLS handshake");
        return 1;
    }
    case TLS_PHASE_HANDSHAKE:
    case TLS_PHASE_ACTIVE:
        SF_ASSERT(c->tls.ssl != NULL); /* both phases begin with the wolfSSL object made */
        if (tls_conn_feed(c->tls.ssl, data, len) != 0) {
            conn_close(c, "TLS input over the limit", 0);
            return 1;
        }
        tls_pump(c);
        return 1;
    }
    return 0;
}

void conn_tls_send(conn *c, char *data, size_t len)
{
    SF_ASSERT(c->tls.phase == TLS_PHASE_ACTIVE && c->tls.ssl != NULL);
    int r = tls_conn_write(c->tls.ssl, data, len);
    free(data);
    send_tls_output(c);
    if (r != 0)
        conn_close(c, tls_conn_error(c->tls.ssl), 0);
}

void conn_tls_close_notify(conn *c)
{
    if (c->tls.phase != TLS_PHASE_ACTIVE)
        return;
    tls_conn_close_notify(c->tls.ssl);
    send_tls_output(c);
}

int conn_tls_handshaking(const conn_tls *t)
{
    return t->phase != TLS_PHASE_NONE && t->phase != TLS_PHASE_ACTIVE;
}

int conn_tls_active(const conn_tls *t)
{
    return t->ssl != NULL && t->phase == TLS_PHASE_ACTIVE;
}

void conn_tls_free(conn_tls *t)
{
    tls_conn_free(t->ssl);
    t->ssl = NULL;
}
