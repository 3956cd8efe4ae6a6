/*
 * conn_internal.h - the connection's state, shared by conn.c (lifetime, I/O, output, close) and
 * conn_tls.c (the TLS phase). Nothing else includes it.
 */
#ifndef SMTPFAULT_CONN_INTERNAL_H
#define SMTPFAULT_CONN_INTERNAL_H

#include <stdarg.h>

#include "bytebuf.h"
#include "conn.h"
#include "conn_tls.h"
#include "peer_watch.h"

typedef enum conn_phase {
    CONN_OPEN,      /* the session is talking */
    CONN_FLUSHING,  /* the session ended: write what is queued, then shut down */
    CONN_LINGERING, /* FIN sent: reading and discarding until the client's FIN or the linger timer */
    CONN_CLOSED,    /* handles closing */
} conn_phase;

typedef enum conn_timer_use {
    TIMER_IDLE,      /* the client has this long to say something */
    TIMER_WAIT,      /* a fault's delay: then session_resume() */
    TIMER_DRIP,      /* the next bytes of a drip */
    TIMER_TLS_DELAY, /* a fault's delay before the handshake */
    TIMER_START,     /* a fault's delay at the connect stage, before the session starts */
    TIMER_LINGER,    /* after our FIN */
    TIMER_RESET,     /* a reset fault waits for its replies to be delivered */
} conn_timer_use;

struct conn {
    server *srv;
    scope *sc; /* its listener's */
    listener *l;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    peer_watch watch; /* while the session is open and the socket not read: has the client gone? */
    session *s;
    fault_conn *faults;
    conn_tls tls;
    int implicit_tls; /* the session starts after the handshake */
    conn_timer_use timer_use;
    LIST_ENTRY(conn) link; /* its scope's conns */
    uint64_t id;
    conn_phase phase;
    int handles_open;
    int commit_pending; /* a --store-dir write refers to this connection */
    int reading;
    int drain_requested;     /* the server is stopping: 421 once the transaction in flight ends */
    int eof;                 /* the client shut its side down */
    int hanging;             /* a connect-stage hang: no session, input discarded */
    int reset_at_end;        /* a reset fault: RST once the output queued before it is delivered */
    int reset_after_input;   /* ... and once the client has sent something more (its ClientHello) */
    uint64_t reset_deadline; /* loop time when the RST goes even if the client has not taken the output */
    uint64_t reset_in_mark;  /* bytes_in when the reset was decided */
    int reset_reading;       /* reset_after_input: reading (and dropping) until the client goes on */
    unsigned writes_pending;
    const char *end_reason; /* why the session ended, for the close log line */
    char client[STORE_CLIENT_MAX];
    bytebuf out;       /* plaintext output of the current batch */
    uint32_t drip_bps; /* the batch being built is dripped at this rate, from out[drip_from] on */
    size_t drip_from;
    uint32_t drip_rate; /* the rate of the drip in progress (drip_bps is reset after each batch) */
    bytebuf drip;       /* output being dripped: drip.data[drip_off .. drip.len) */
    size_t drip_off;
    uint64_t bytes_in, bytes_out;
    uint64_t started_ms;     /* loop time */
    int64_t started_wall_ms; /* wall clock, for the admin socket */
    uint64_t messages;       /* kept */
    int first_output_seen;   /* conn_findings_before_output looked at the first reply */
    transcript transcript;
    story_track story; /* this connection's part of its client's story */
};

/* conn_event - one transcript event (ctx is the conn): its transcript, the log, admin subscribers */
void conn_event(void *ctx, int level, const char *name, const char *text, size_t len);
void conn_eventf(conn *c, int level, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* conn_close - the one close path: idempotent; frees once every handle has closed (reset: an RST) */
void conn_close(conn *c, const char *reason, int reset);

/* conn_end_gracefully - write what is queued (and close_notify), then FIN */
void conn_end_gracefully(conn *c, const char *reason);

/* conn_queue_write - hand data (malloc'd, ownership passes) to libuv */
void conn_queue_write(conn *c, char *data, size_t len);

/* conn_flush - the batch's output: written now, and from drip_from on handed to the drip */
void conn_flush(conn *c);

/* conn_timer_set, conn_timer_idle - the one timer, for use; the idle timeout */
void conn_timer_set(conn *c, conn_timer_use use, uint64_t ms);
void conn_timer_idle(conn *c);

/* conn_findings_before_output - before a batch goes out: did the client speak before the greeting? */
void conn_findings_before_output(conn *c);

/* conn_findings_client_left - the client closed or reset: did it leave without QUIT? */
void conn_findings_client_left(conn *c);

/* conn_findings_announce - the findings of the client's retry story this connection made: to its session's
 * findings and transcript */
void conn_findings_announce(conn *c);

/* conn_findings_after_close - bytes read while lingering after the session ended */
void conn_findings_after_close(conn *c, const char *data, size_t len);

#endif
