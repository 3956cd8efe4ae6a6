/*
 * conn_tls.h - a connection's TLS phase: the handshake (implicit, or after STARTTLS's 220), the
 * tls_handshake fault stage, and the encrypted channel once it is up.
 *
 * The phases (conn_tls_phase) are the connection's view; the wolfSSL object they drive is tls.c's tls_conn.
 */
#ifndef SMTPFAULT_CONN_TLS_H
#define SMTPFAULT_CONN_TLS_H

#include <stddef.h>

#include "fault.h"
#include "tls.h"

typedef struct conn conn;

typedef enum conn_tls_phase {
    TLS_PHASE_NONE,      /* plaintext */
    TLS_PHASE_PENDING,   /* STARTTLS accepted: the handshake starts once the 220 is queued */
    TLS_PHASE_HANDSHAKE, /* the handshake runs */
    TLS_PHASE_ACTIVE,    /* application data is encrypted */
    TLS_PHASE_STALLED,   /* a fault: ciphertext is read and ignored */
    TLS_PHASE_ALERT,     /* a fault: the first ciphertext gets an alert, then the connection closes */
    TLS_PHASE_RAW,       /* a fault: the first ciphertext gets the raw bytes, then the connection closes */
} conn_tls_phase;

typedef struct conn_tls {
    conn_tls_phase phase;
    tls_conn *ssl;               /* from the handshake on */
    int alert;                   /* TLS_PHASE_ALERT: the description to send */
    const fault_action *raw;     /* TLS_PHASE_RAW: the rule whose raw bytes answer the ClientHello */
    const fault_action *pending; /* a tls_handshake fault waiting for its delay */
} conn_tls;

/* conn_tls_begin - the handshake is due (implicit TLS at accept, or after the STARTTLS 220) */
void conn_tls_begin(conn *c);

/* conn_tls_delay_over - a tls_handshake fault's delay has passed: the handshake starts as decided */
void conn_tls_delay_over(conn *c);

/* conn_tls_feed - bytes read while the phase is not NONE; 1 when the session may have spoken, else 0 */
int conn_tls_feed(conn *c, const char *data, size_t len);

/* conn_tls_send - session output (malloc'd, ownership passes), encrypted and queued; TLS_PHASE_ACTIVE only */
void conn_tls_send(conn *c, char *data, size_t len);

/* conn_tls_close_notify - the close_notify alert before our FIN, when the channel is up */
void conn_tls_close_notify(conn *c);

/* conn_tls_handshaking - a handshake is due, runs, or a fault stands in for one */
int conn_tls_handshaking(const conn_tls *t);

/* conn_tls_active - application data is encrypted */
int conn_tls_active(const conn_tls *t);

/* conn_tls_free - the wolfSSL object, if any */
void conn_tls_free(conn_tls *t);

#endif
