/*
 * tls.h - TLS for client connections: wolfSSL as a sans-I/O engine.
 *
 * The connection owns the socket; this module never sees it. Ciphertext the socket read is fed in with
 * tls_conn_feed(), wolfSSL's receive callback takes it from there (WANT_READ when it runs dry), and
 * everything wolfSSL sends is collected for the connection to write (tls_conn_take_output). One wolfSSL
 * context per (certificate, protocol versions) pair that a profile asks for, made on first use and kept.
 * Implements the server side of TLS 1.1 to 1.3 for STARTTLS (RFC 3207) and implicit TLS (RFC 8314).
 */
#ifndef SMTPFAULT_TLS_H
#define SMTPFAULT_TLS_H

#include <stddef.h>

#include "certs.h"

/* tls_policy - what one handshake offers: a certificate and a contiguous range of versions */
typedef struct tls_policy {
    cert_kind cert;
    tls_version min, max;
} tls_policy;

/* The default: the valid certificate, TLS 1.2 and 1.3 (RFC 8996 retired 1.0 and 1.1). */
#define TLS_POLICY_DEFAULT ((tls_policy){CERT_VALID, TLS_V1_2, TLS_V1_3})

typedef struct tls_server tls_server;
typedef struct tls_conn tls_conn;

/*
 * tls_server_new - wolfSSL set up with cs (copied); the default context is built at once so that a bad
 * --cert/--key is reported at start. NULL with a reason in err.
 */
tls_server *tls_server_new(const cert_set *cs, char *err, size_t errsz);
void tls_server_free(tls_server *ts);

/* tls_server_ca_pem - the CA certificate clients should trust (PEM) */
const char *tls_server_ca_pem(const tls_server *ts);

typedef enum tls_status {
    TLS_DONE,   /* the handshake is complete */
    TLS_WANT,   /* more ciphertext is needed */
    TLS_FAILED, /* the handshake failed: tls_conn_error() says why; output may hold an alert to send */
} tls_status;

/* tls_conn_new - a server-side TLS session under policy; NULL with a reason in err */
tls_conn *tls_conn_new(tls_server *ts, const tls_policy *policy, char *err, size_t errsz);
void tls_conn_free(tls_conn *tc);

/* tls_conn_feed - ciphertext from the socket; -1 when it would pass the input limit */
int tls_conn_feed(tls_conn *tc, const char *data, size_t len);

/* tls_conn_handshake - advance the handshake with the ciphertext fed so far */
tls_status tls_conn_handshake(tls_conn *tc);

/*
 * tls_conn_read - decrypt into buf: the byte count (> 0), 0 when more ciphertext is needed, -1 when the
 * client sent close_notify, -2 on an error (tls_conn_error() says which).
 */
int tls_conn_read(tls_conn *tc, char *buf, size_t cap);

/* tls_conn_write - encrypt plaintext into the output; 0, or -1 on an error */
int tls_conn_write(tls_conn *tc, const char *data, size_t len);

/* tls_conn_close_notify - queue our close_notify alert (RFC 8446 section 6.1) */
void tls_conn_close_notify(tls_conn *tc);

/*
 * tls_conn_take_output - the ciphertext waiting to be sent, as a malloc'd buffer now owned by the caller
 * (NULL and 0 when there is none).
 */
char *tls_conn_take_output(tls_conn *tc, size_t *len);

/* tls_conn_version ("TLSv1.3"), tls_conn_cipher (IANA-style name), tls_conn_resumed - after TLS_DONE */
const char *tls_conn_version(const tls_conn *tc);
const char *tls_conn_cipher(const tls_conn *tc);
int tls_conn_resumed(const tls_conn *tc);

/* tls_conn_error - why the last operation failed, in words (for the transcript) */
const char *tls_conn_error(const tls_conn *tc);

/*
 * tls_alert_record - a fatal TLS alert record with the given description (RFC 8446 section 6) in out[7],
 * for the handshake faults that refuse a ClientHello outright. Returns the record length (7).
 */
size_t tls_alert_record(int description, unsigned char out[7]);

#endif
