/*
 * tls.c - wolfSSL contexts and the per-connection sans-I/O TLS engine.
 *
 * wolfSSL's I/O callbacks read from the ciphertext the connection fed in and write to a buffer the
 * connection takes and sends, so wolfSSL never blocks and never touches the socket (the lightway-core
 * pattern). A context is made per (certificate, version range) on first use and kept until exit: a profile
 * that presents the expired certificate over TLS 1.1 costs one context, however many sessions use it.
 */
#include "tls.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>

#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>

#include "bytebuf.h"
#include "fault.h"

#define TLS_INPUT_MAX   (256 * 1024) /* ciphertext waiting to be decrypted: a few reads' worth */
#define TLS_OUT_INITIAL 4096         /* a handshake flight with one certificate fits */
#define TLS_IN_INITIAL  16384        /* one full TLS record */
#define TLS_ERROR_MAX   200
#define TLS_SUITES_MAX  4096 /* every suite a context enables, by name, ':'-separated */

struct tls_server {
    cert_set certs;
    WOLFSSL_CTX *ctx[CERT_KIND_COUNT][TLS_VERSION_COUNT][TLS_VERSION_COUNT]; /* [cert][min][max] */
};

struct tls_conn {
    WOLFSSL *ssl;
    tls_policy policy;
    bytebuf in; /* ciphertext fed and not yet taken by wolfSSL: in.data[in_off .. in.len) */
    size_t in_off;
    bytebuf out; /* ciphertext wolfSSL produced, for the connection to send */
    int peer_eof;
    int failed_io; /* the output buffer could not grow */
    char error[TLS_ERROR_MAX];
};

/* wolf_min_version / wolf_max_version - our version as wolfSSL's two ways of naming it */
static int wolf_min_version(tls_version v)
{
    return v == TLS_V1_1 ? WOLFSSL_TLSV1_1 : v == TLS_V1_2 ? WOLFSSL_TLSV1_2 : WOLFSSL_TLSV1_3;
}

static int wolf_max_version(tls_version v)
{
    return v == TLS_V1_1 ? TLS1_1_VERSION : v == TLS_V1_2 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

/* -- alerts --------------------------------------------------------------------------------------------- */

size_t tls_alert_record(int description, unsigned char out[7])
{
    /* ContentType alert (21), legacy version TLS 1.2, length 2, level fatal (2), description. */
    const unsigned char rec[7] = {21, 3, 3, 0, 2, 2, (unsigned char)description};
    memcpy(out, rec, sizeof(rec));
    return sizeof(rec);
}

/* -- I/O callbacks ----------------------------------------------------------------------------------------
 */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    tls_conn *tc = ctx;
    size_t avail = tc->in.len - tc->in_off;
    if (avail == 0)
        return tc->peer_eof ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = avail < (size_t)sz ? avail : (size_t)sz;
    memcpy(buf, tc->in.data + tc->in_off, n);
    tc->in_off += n;
    if (tc->in_off == tc->in.len) {
        /* All read: give the buffer back, so that an idle connection does not keep 16 KiB for nothing. */
        bytebuf_release(&tc->in);
        tc->in_off = 0;
    }
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    tls_conn *tc = ctx;
    if (bytebuf_append(&tc->out, buf, (size_t)sz) != 0) {
        tc->failed_io = 1;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    return sz;
}

/* -- contexts ---------------------------------------------------------------------------------------------
 */

/*
 * prefer_chacha - the context's suites, ChaCha20-Poly1305 first, chosen in this order whatever the client
 * prefers: Debian's wolfSSL has no AES-NI code, and its ChaCha20-Poly1305 is about 2.5 times as fast as its
 * AES-GCM (docs/performance.md). Every suite stays enabled, so a client that offers only AES still connects.
 */
static int prefer_chacha(WOLFSSL_CTX *ctx)
{
    WOLFSSL *ssl = wolfSSL_new(ctx);
    if (ssl == NULL)
        return -1;
    char list[TLS_SUITES_MAX];
    size_t len = 0;
    WOLF_STACK_OF(WOLFSSL_CIPHER) *suites = wolfSSL_get_ciphers_compat(ssl); /* the ssl's own */
    int count = suites ? wolfSSL_sk_SSL_CIPHER_num(suites) : 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < count; i++) {
            const char *name = wolfSSL_CIPHER_get_name(wolfSSL_sk_SSL_CIPHER_value(suites, i));
            if (name == NULL || (strstr(name, "CHACHA20-POLY1305") != NULL) != (pass == 0))
                continue;
            int n = snprintf(list + len, sizeof(list) - len, "%s%s", len > 0 ? ":" : "", name);
            if (n < 0 || (size_t)n >= sizeof(list) - len) {
                wolfSSL_free(ssl);
                return -1;
            }
            len += (size_t)n;
        }
    }
    wolfSSL_free(ssl);
    if (wolfSSL_CTX_set_cipher_list(ctx, list) != WOLFSSL_SUCCESS)
        return -1;
    wolfSSL_CTX_set_options(ctx, WOLFSSL_OP_CIPHER_SERVER_PREFERENCE);
    return 0;
}

/* make_ctx - a server context presenting pair, allowing [min, max]; NULL with a reason in err */
static WOLFSSL_CTX *make_ctx(const cert_pair *pair, tls_version min, tls_version max, char *err, size_t errsz)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (ctx == NULL) {
        snprintf(err, errsz, "cannot create a TLS context");
        return NULL;
    }
    const char *what = NULL;
    if (wolfSSL_CTX_SetMinVersion(ctx, wolf_min_version(min)) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_max_proto_version(ctx, wolf_max_version(max)) != WOLFSSL_SUCCESS)
        what = "protocol versions";
    else if (wolfSSL_CTX_use_certificate_chain_buffer_format(ctx, (const unsigned char *)pair->cert,
                                                             (long)strlen(pair->cert),
                                                             WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        what = "certificate (PEM)";
    else if (wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)pair->key, (long)strlen(pair->key),
                                               WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        what = "private key (PEM)";
    else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS)
        what = "private key: it does not match the certificate";
    else if (prefer_chacha(ctx) != 0)
        what = "cipher suite order";
    if (what != NULL) {
        snprintf(err, errsz, "TLS %s-%s: bad %s", fault_tls_version_name((int)min),
                 fault_tls_version_name((int)max), what);
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL); /* no client certificates */
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    return ctx;
}

static WOLFSSL_CTX *get_ctx(tls_server *ts, const tls_policy *p, char *err, size_t errsz)
{
    if ((unsigned)p->cert >= CERT_KIND_COUNT || (unsigned)p->min >= TLS_VERSION_COUNT ||
        (unsigned)p->max >= TLS_VERSION_COUNT || p->min > p->max) {
        snprintf(err, errsz, "invalid TLS policy");
        return NULL;
    }
    WOLFSSL_CTX **slot = &ts->ctx[p->cert][p->min][p->max];
    if (*slot == NULL)
        *slot = make_ctx(&ts->certs.server[p->cert], p->min, p->max, err, errsz);
    return *slot;
}

/* -- the start-up self-test ------------------------------------------------------------------------------ */

/* A client half for self_test: its I/O callbacks read what the server wrote and write into the server. */
typedef struct loopback {
    tls_conn *server;
    char *in; /* server output not yet read by the client */
    size_t in_len, in_off;
} loopback;

static int loop_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    loopback *lb = ctx;
    if (lb->in_off == lb->in_len) {
        free(lb->in);
        lb->in = tls_conn_take_output(lb->server, &lb->in_len);
        lb->in_off = 0;
        if (lb->in == NULL)
            return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    size_t n = lb->in_len - lb->in_off < (size_t)sz ? lb->in_len - lb->in_off : (size_t)sz;
    memcpy(buf, lb->in + lb->in_off, n);
    lb->in_off += n;
    return (int)n;
}

static int loop_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    loopback *lb = ctx;
    return tls_conn_feed(lb->server, buf, (size_t)sz) == 0 ? sz : WOLFSSL_CBIO_ERR_GENERAL;
}

/*
 * self_test - one handshake in memory with the default context, as a client that does not verify. It
 * catches what loading does not: wolfSSL_CTX_check_private_key accepts an ECDSA key that belongs to
 * another certificate, and every real handshake would then fail with decrypt_error.
 */
static int self_test(tls_server *ts, char *err, size_t errsz)
{
    tls_policy def = TLS_POLICY_DEFAULT;
    loopback lb = {NULL, NULL, 0, 0};
    WOLFSSL_CTX *cctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    WOLFSSL *client = cctx ? wolfSSL_new(cctx) : NULL;
    lb.server = client ? tls_conn_new(ts, &def, err, errsz) : NULL;
    int ok = 0;
    if (lb.server != NULL) {
        wolfSSL_CTX_set_verify(cctx, WOLFSSL_VERIFY_NONE, NULL);
        wolfSSL_SSLSetIORecv(client, loop_recv);
        wolfSSL_SSLSetIOSend(client, loop_send);
        wolfSSL_SetIOReadCtx(client, &lb);
        wolfSSL_SetIOWriteCtx(client, &lb);
        int client_done = 0, server_done = 0, client_err = 0;
        for (int round = 0; round < 20 && !(client_done && server_done); round++) {
            if (!client_done) {
                int r = wolfSSL_connect(client);
                if (r == WOLFSSL_SUCCESS)
                    client_done = 1;
                else if ((client_err = wolfSSL_get_error(client, r)) != WOLFSSL_ERROR_WANT_READ)
                    break;
            }
            if (!server_done) {
                tls_status st = tls_conn_handshake(lb.server);
                if (st == TLS_FAILED)
                    break;
                server_done = st == TLS_DONE;
            }
        }
        ok = client_done && server_done;
        char why[WOLFSSL_MAX_ERROR_SZ];
        wolfSSL_ERR_error_string_n((unsigned long)client_err, why, sizeof(why));
        if (!ok)
            snprintf(err, errsz,
                     "a test handshake with the certificate failed (the client said: %s): does the key "
                     "belong to the certificate?",
                     client_err != 0 && client_err != WOLFSSL_ERROR_WANT_READ ? why
                                                                              : tls_conn_error(lb.server));
    } else if (client == NULL) {
        snprintf(err, errsz, "cannot create a TLS client for the start-up test");
    }
    tls_conn_free(lb.server);
    free(lb.in);
    wolfSSL_free(client);
    wolfSSL_CTX_free(cctx);
    return ok ? 0 : -1;
}

static char *copy_text(const char *s)
{
    return s ? strdup(s) : NULL;
}

tls_server *tls_server_new(const cert_set *cs, char *err, size_t errsz)
{
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        snprintf(err, errsz, "cannot initialise wolfSSL");
        return NULL;
    }
    tls_server *ts = calloc(1, sizeof(*ts));
    if (ts == NULL) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    int bad = 0;
    ts->certs.ca.cert = copy_text(cs->ca.cert);
    ts->certs.ca.key = copy_text(cs->ca.key);
    ts->certs.untrusted_ca.cert = copy_text(cs->untrusted_ca.cert);
    ts->certs.untrusted_ca.key = copy_text(cs->untrusted_ca.key);
    for (int i = 0; i < CERT_KIND_COUNT; i++) {
        ts->certs.server[i].cert = copy_text(cs->server[i].cert);
        ts->certs.server[i].key = copy_text(cs->server[i].key);
        bad |= ts->certs.server[i].cert == NULL || ts->certs.server[i].key == NULL;
    }
    if (bad || ts->certs.ca.cert == NULL) {
        snprintf(err, errsz, "out of memory");
        tls_server_free(ts);
        return NULL;
    }
    tls_policy def = TLS_POLICY_DEFAULT;
    if (get_ctx(ts, &def, err, errsz) == NULL || self_test(ts, err, errsz) != 0) {
        tls_server_free(ts);
        return NULL;
    }
    return ts;
}

void tls_server_free(tls_server *ts)
{
    if (ts == NULL)
        return;
    for (int c = 0; c < CERT_KIND_COUNT; c++)
        for (int a = 0; a < TLS_VERSION_COUNT; a++)
            for (int b = 0; b < TLS_VERSION_COUNT; b++)
                wolfSSL_CTX_free(ts->ctx[c][a][b]);
    cert_set_free(&ts->certs);
    free(ts);
    wolfSSL_Cleanup();
}

const char *tls_server_ca_pem(const tls_server *ts)
{
    return ts->certs.ca.cert;
}

/* -- connections ------------------------------------------------------------------------------------------
 */

tls_conn *tls_conn_new(tls_server *ts, const tls_policy *policy, char *err, size_t errsz)
{
    WOLFSSL_CTX *ctx = get_ctx(ts, policy, err, errsz);
    if (ctx == NULL)
        return NULL;
    tls_conn *tc = calloc(1, sizeof(*tc));
    if (tc == NULL || (tc->ssl = wolfSSL_new(ctx)) == NULL) {
        free(tc);
        snprintf(err, errsz, "out of memory for a TLS session");
        return NULL;
    }
    wolfSSL_SetIOReadCtx(tc->ssl, tc);
    wolfSSL_SetIOWriteCtx(tc->ssl, tc);
    tc->policy = *policy;
    bytebuf_init(&tc->in, TLS_IN_INITIAL, TLS_INPUT_MAX);
    /* Unbounded here: what wolfSSL writes is the session's output of one batch, bounded where it is made. */
    bytebuf_init(&tc->out, TLS_OUT_INITIAL, SIZE_MAX);
    return tc;
}

void tls_conn_free(tls_conn *tc)
{
    if (tc == NULL)
        return;
    wolfSSL_free(tc->ssl);
    bytebuf_release(&tc->in);
    bytebuf_release(&tc->out);
    free(tc);
}

int tls_conn_feed(tls_conn *tc, const char *data, size_t len)
{
    if (len == 0) { /* the client closed its side */
        tc->peer_eof = 1;
        return 0;
    }
    if (tc->in.len - tc->in_off + len > TLS_INPUT_MAX) /* what waits, not what was taken already */
        return -1;
    if (tc->in_off > 0 && tc->in.len + len > tc->in.cap) { /* compact before growing */
        bytebuf_consume(&tc->in, tc->in_off);
        tc->in_off = 0;
    }
    return bytebuf_append(&tc->in, data, len);
}

/* looks_like_smtp - the first bytes of a "ClientHello" are an SMTP command: a plaintext client */
static int looks_like_smtp(const char *s, size_t n)
{
    if (n < 4)
        return 0;
    for (size_t i = 0; i < 4; i++)
        if (!isalpha((unsigned char)s[i]))
            return 0;
    return 1;
}

/*
 * plaintext_alert - the description of the unencrypted alert record at the start of s, or -1. A TLS 1.3
 * client that rejects our certificate (OpenSSL does this) sends its alert before it has handshake keys,
 * in plain text, and wolfSSL, expecting an encrypted record, only reports a parse error.
 */
static int plaintext_alert(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (n < 7 || p[0] != 21 || p[1] != 3 || p[3] != 0 || p[4] != 2)
        return -1;
    return p[6];
}

/* describe_error - tls_conn_error's text for wolfSSL error err */
static void describe_error(tls_conn *tc, int err)
{
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    char text[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)err, text, sizeof(text));
    if (tc->failed_io) {
        snprintf(tc->error, sizeof(tc->error), "out of memory for TLS output");
    } else if (err == SOCKET_PEER_CLOSED_E || err == SOCKET_ERROR_E || tc->peer_eof) {
        snprintf(tc->error, sizeof(tc->error), "the client closed the connection during the TLS handshake");
    } else if (wolfSSL_get_alert_history(tc->ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code > 0 &&
               h.last_rx.level == 2) {
        snprintf(tc->error, sizeof(tc->error), "the client sent TLS alert %d (%s): %s", h.last_rx.code,
                 fault_tls_alert_name(h.last_rx.code), text);
    } else {
        snprintf(tc->error, sizeof(tc->error), "%s (wolfSSL error %d)", text, err);
    }
}

tls_status tls_conn_handshake(tls_conn *tc)
{
    /* Seen before wolfSSL consumes it: a plaintext client on the implicit-TLS port. */
    int plaintext = !wolfSSL_is_init_finished(tc->ssl) &&
                    looks_like_smtp(tc->in.data + tc->in_off, tc->in.len - tc->in_off);
    char first[16];
    size_t nfirst = tc->in.len - tc->in_off < sizeof(first) - 1 ? tc->in.len - tc->in_off : sizeof(first) - 1;
    if (plaintext) {
        memcpy(first, tc->in.data + tc->in_off, nfirst);
        first[nfirst] = '\0';
    }
    int alert = wolfSSL_is_init_finished(tc->ssl)
                    ? -1
                    : plaintext_alert(tc->in.data + tc->in_off, tc->in.len - tc->in_off);
    int r = wolfSSL_accept(tc->ssl);
    if (r == WOLFSSL_SUCCESS)
        return TLS_DONE;
    int err = wolfSSL_get_error(tc->ssl, r);
    if (err == WOLFSSL_ERROR_WANT_READ && !tc->peer_eof)
        return TLS_WANT;
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    int client_alerted =
        alert >= 0 || (wolfSSL_get_alert_history(tc->ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code > 0);
    if (!plaintext && !client_alerted && tc->policy.max < TLS_V1_2 &&
        (err == MATCH_SUITE_ERROR || err == VERSION_ERROR)) {
        /* A server limited to TLS 1.1 facing a client that offers only 1.2 and later: wolfSSL finds no
         * common cipher suite and says handshake_failure; OpenSSL-based servers, which users meet, say
         * protocol_version (RFC 5246 appendix E.1), and clients then report a version error. */
        unsigned char rec[7];
        size_t n = tls_alert_record(70, rec);
        tc->out.len = 0;
        (void)io_send(tc->ssl, (char *)rec, (int)n, tc);
        snprintf(
            tc->error, sizeof(tc->error),
            "the client offers only TLS 1.2 or later; this handshake allows TLS %s at most (protocol_version "
            "alert)",
            fault_tls_version_name((int)tc->policy.max));
        return TLS_FAILED;
    }
    if (plaintext) {
        for (size_t i = 0; i < nfirst; i++)
            if (!isprint((unsigned char)first[i]))
                first[i] = '\0';
        snprintf(tc->error, sizeof(tc->error),
                 "the client sent plaintext (\"%s...\") instead of a TLS ClientHello", first);
    } else if (alert >= 0) {
        snprintf(tc->error, sizeof(tc->error), "the client sent TLS alert %d (%s)", alert,
                 fault_tls_alert_name(alert));
    } else {
        describe_error(tc, err);
    }
    return TLS_FAILED;
}

int tls_conn_read(tls_conn *tc, char *buf, size_t cap)
{
    int n = wolfSSL_read(tc->ssl, buf, (int)(cap > 0x7fffffff ? 0x7fffffff : cap));
    if (n > 0)
        return n;
    int err = wolfSSL_get_error(tc->ssl, n);
    if (err == WOLFSSL_ERROR_WANT_READ && !tc->peer_eof)
        return 0;
    if (err == WOLFSSL_ERROR_ZERO_RETURN)
        return -1;
    describe_error(tc, err);
    return -2;
}

int tls_conn_write(tls_conn *tc, const char *data, size_t len)
{
    while (len > 0) {
        int chunk = len > 16384 ? 16384 : (int)len;
        int n = wolfSSL_write(tc->ssl, data, chunk);
        if (n <= 0) {
            describe_error(tc, wolfSSL_get_error(tc->ssl, n));
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

void tls_conn_close_notify(tls_conn *tc)
{
    (void)wolfSSL_shutdown(tc->ssl); /* one-way: we do not wait for the client's close_notify */
}

char *tls_conn_take_output(tls_conn *tc, size_t *len)
{
    return bytebuf_take(&tc->out, len);
}

const char *tls_conn_version(const tls_conn *tc)
{
    return wolfSSL_get_version(tc->ssl);
}

const char *tls_conn_cipher(const tls_conn *tc)
{
    return wolfSSL_get_cipher_name(tc->ssl);
}

int tls_conn_resumed(const tls_conn *tc)
{
    return wolfSSL_session_reused(tc->ssl);
}

const char *tls_conn_error(const tls_conn *tc)
{
    return tc->error[0] ? tc->error : "TLS error";
}
