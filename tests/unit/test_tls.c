/* test_tls.c - the sans-I/O TLS layer (server/tls.c) and the test PKI (server/certs.c), without sockets */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <wolfssl/options.h>

#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "certs.h"
#include "fsutil.h"
#include "tls.h"

#define HOST     "mx.test"
#define BUF_MAX  (256 * 1024)
#define MAX_TURN 20

static cert_set pki; /* generated once for every test */

/* -- an in-memory wolfSSL client ------------------------------------------------------------------------ */

typedef struct pipe_buf {
    char data[BUF_MAX];
    size_t len, off;
} pipe_buf;

typedef struct client {
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl;
    pipe_buf in;  /* what the server sent, for the client to read */
    pipe_buf out; /* what the client sent, for the server */
    int done;     /* the client's handshake completed */
    int error;    /* the client's wolfSSL error, once it failed */
} client;

static void pipe_put(pipe_buf *p, const char *data, size_t len)
{
    assert_true(p->len + len <= sizeof(p->data));
    memcpy(p->data + p->len, data, len);
    p->len += len;
}

static int client_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    pipe_buf *p = &((client *)ctx)->in;
    size_t avail = p->len - p->off;
    if (avail == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = avail < (size_t)sz ? avail : (size_t)sz;
    memcpy(buf, p->data + p->off, n);
    p->off += n;
    if (p->off == p->len)
        p->off = p->len = 0;
    return (int)n;
}

static int client_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    pipe_put(&((client *)ctx)->out, buf, (size_t)sz);
    return sz;
}

/* client_new - a client trusting the generated CA, checking the host name, allowing [min, max] */
static client *client_new(int min, int max)
{
    client *c = calloc(1, sizeof(*c));
    c->ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    assert_non_null(c->ctx);
    assert_int_equal(wolfSSL_CTX_SetMinVersion(c->ctx, min), WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_CTX_set_max_proto_version(c->ctx, max), WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_CTX_load_verify_buffer(c->ctx, (const unsigned char *)pki.ca.cert,
                                                    (long)strlen(pki.ca.cert), WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_PEER, NULL);
    wolfSSL_CTX_SetIORecv(c->ctx, client_recv);
    wolfSSL_CTX_SetIOSend(c->ctx, client_send);
    c->ssl = wolfSSL_new(c->ctx);
    assert_non_null(c->ssl);
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    assert_int_equal(wolfSSL_check_domain_name(c->ssl, HOST), WOLFSSL_SUCCESS);
    return c;
}

static void client_free(client *c)
{
    wolfSSL_free(c->ssl);
    wolfSSL_CTX_free(c->ctx);
    free(c);
}

/* to_server - what the client sent, fed to the server */
static void to_server(client *c, tls_conn *tc)
{
    if (c->out.len > 0)
        assert_int_equal(tls_conn_feed(tc, c->out.data, c->out.len), 0);
    c->out.len = c->out.off = 0;
}

/* to_client - what the server produced, for the client to read */
static size_t to_client(client *c, tls_conn *tc)
{
    size_t len;
    char *out = tls_conn_take_output(tc, &len);
    if (out != NULL)
        pipe_put(&c->in, out, len);
    free(out);
    return len;
}

/* client_step - one wolfSSL_connect; 1 when the client is done or has failed */
static int client_step(client *c)
{
    if (c->done || c->error)
        return 1;
    int r = wolfSSL_connect(c->ssl);
    if (r == WOLFSSL_SUCCESS) {
        c->done = 1;
        return 1;
    }
    int err = wolfSSL_get_error(c->ssl, r);
    if (err != WOLFSSL_ERROR_WANT_READ) {
        c->error = err;
        return 1;
    }
    return 0;
}

/* handshake - run both sides until neither moves; the server's last status */
static tls_status handshake(client *c, tls_conn *tc)
{
    tls_status st = TLS_WANT;
    for (int turn = 0; turn < MAX_TURN; turn++) {
        client_step(c);
        size_t sent = c->out.len;
        to_server(c, tc);
        if (st == TLS_WANT)
            st = tls_conn_handshake(tc);
        size_t got = to_client(c, tc);
        if (sent == 0 && got == 0 && turn > 0)
            break; /* neither side moves any more */
    }
    client_step(c);
    return st;
}

static tls_server *server(void)
{
    char err[200];
    tls_server *ts = tls_server_new(&pki, err, sizeof(err));
    if (ts == NULL)
        print_error("tls_server_new: %s\n", err);
    assert_non_null(ts);
    return ts;
}

static tls_conn *conn(tls_server *ts, cert_kind cert, tls_version min, tls_version max)
{
    char err[200];
    tls_policy p = {cert, min, max};
    tls_conn *tc = tls_conn_new(ts, &p, err, sizeof(err));
    if (tc == NULL)
        print_error("tls_conn_new: %s\n", err);
    assert_non_null(tc);
    return tc;
}

/* -- handshakes ------------------------------------------------------------------------------------------ */

/* exchange - data both ways over an established session, then the client's close_notify */
static void exchange(client *c, tls_conn *tc)
{
    char buf[256];
    assert_int_equal(tls_conn_read(tc, buf, sizeof(buf)), 0); /* nothing yet */
    assert_int_equal(wolfSSL_write(c->ssl, "EHLO x\r\n", 8), 8);
    to_server(c, tc);
    int n = tls_conn_read(tc, buf, sizeof(buf));
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "EHLO x\r\n", 8);

    static char big[40000];
    memset(big, 'b', sizeof(big));
    assert_int_equal(tls_conn_write(tc, "250 mx.test\r\n", 13), 0);
    assert_int_equal(tls_conn_write(tc, big, sizeof(big)), 0); /* more than one record */
    assert_true(to_client(c, tc) > sizeof(big));
    assert_int_equal(wolfSSL_read(c->ssl, buf, 13), 13);
    assert_memory_equal(buf, "250 mx.test\r\n", 13);
    size_t total = 0;
    while (total < sizeof(big)) {
        int r = wolfSSL_read(c->ssl, buf, sizeof(buf));
        assert_true(r > 0);
        assert_int_equal(buf[0], 'b');
        total += (size_t)r;
    }
    assert_int_equal(total, sizeof(big));

    /* the client's close_notify */
    wolfSSL_shutdown(c->ssl);
    to_server(c, tc);
    assert_int_equal(tls_conn_read(tc, buf, sizeof(buf)), -1);
}

static void expect_handshake(tls_version v, int client_min, int client_max, const char *version)
{
    tls_server *ts = server();
    tls_conn *tc = conn(ts, CERT_VALID, v, v);
    client *c = client_new(client_min, client_max);
    assert_int_equal(handshake(c, tc), TLS_DONE);
    assert_true(c->done);
    assert_string_equal(tls_conn_version(tc), version);
    assert_string_equal(wolfSSL_get_version(c->ssl), version);
    assert_non_null(tls_conn_cipher(tc));
    assert_false(tls_conn_resumed(tc));
    exchange(c, tc);
    client_free(c);
    tls_conn_free(tc);
    tls_server_free(ts);
}

static void test_handshake_tls13(void **state)
{
    (void)state;
    expect_handshake(TLS_V1_3, WOLFSSL_TLSV1_2, TLS1_3_VERSION, "TLSv1.3");
}

static void test_handshake_tls12(void **state)
{
    (void)state;
    expect_handshake(TLS_V1_2, WOLFSSL_TLSV1_2, TLS1_3_VERSION, "TLSv1.2");
}

static void test_default_policy(void **state)
{
    (void)state;
    tls_server *ts = server();
    assert_string_equal(tls_server_ca_pem(ts), pki.ca.cert);
    tls_policy def = TLS_POLICY_DEFAULT;
    tls_conn *tc = conn(ts, def.cert, def.min, def.max);
    client *c = client_new(WOLFSSL_TLSV1_2, TLS1_2_VERSION); /* a TLS 1.2-only client is served */
    assert_int_equal(handshake(c, tc), TLS_DONE);
    assert_string_equal(tls_conn_version(tc), "TLSv1.2");
    /* the server's close_notify: the client reads the end */
    tls_conn_close_notify(tc);
    to_client(c, tc);
    char buf[16];
    assert_true(wolfSSL_read(c->ssl, buf, sizeof(buf)) <= 0);
    assert_int_equal(wolfSSL_get_error(c->ssl, 0), WOLFSSL_ERROR_ZERO_RETURN);
    client_free(c);
    tls_conn_free(tc);
    tls_server_free(ts);
}

/* expect_bad_certificate - the client refuses certificate kind with wolfSSL error want */
static void expect_bad_certificate(cert_kind kind, int want)
{
    tls_server *ts = server();
    tls_conn *tc = conn(ts, kind, TLS_V1_2, TLS_V1_3);
    client *c = client_new(WOLFSSL_TLSV1_2, TLS1_3_VERSION);
    tls_status st = handshake(c, tc);
    if (c->done || c->error == 0) {
        print_error("certificate %d: the client accepted it\n", kind);
        fail();
    }
    if (c->error != want) {
        print_error("certificate %d: client error %d, expected %d\n", kind, c->error, want);
        fail();
    }
    /* the client's alert ends the server's side too */
    assert_int_equal(st, TLS_FAILED);
    assert_true(strlen(tls_conn_error(tc)) > 0);
    client_free(c);
    tls_conn_free(tc);
    tls_server_free(ts);
}

static void test_bad_certificates(void **state)
{
    (void)state;
    expect_bad_certificate(CERT_EXPIRED, ASN_AFTER_DATE_E);
    expect_bad_certificate(CERT_WRONG_HOST, DOMAIN_NAME_MISMATCH);
    expect_bad_certificate(CERT_SELF_SIGNED, ASN_SELF_SIGNED_E);
    expect_bad_certificate(CERT_UNTRUSTED, ASN_NO_SIGNER_E);
}

static void test_version_policy(void **state)
{
    (void)state;
    tls_server *ts = server();
    tls_conn *tc = conn(ts, CERT_VALID, TLS_V1_1, TLS_V1_1);
    client *c = client_new(WOLFSSL_TLSV1_2, TLS1_3_VERSION);
    assert_int_equal(handshake(c, tc), TLS_FAILED);
    assert_false(c->done);
    assert_true(c->error != 0);
    assert_true(strlen(tls_conn_error(tc)) > 0);
    client_free(c);
    tls_conn_free(tc);

    /* a client that allows 1.1 gets it */
    tc = conn(ts, CERT_VALID, TLS_V1_1, TLS_V1_1);
    c = client_new(WOLFSSL_TLSV1_1, TLS1_3_VERSION);
    assert_int_equal(handshake(c, tc), TLS_DONE);
    assert_string_equal(tls_conn_version(tc), "TLSv1.1");
    client_free(c);
    tls_conn_free(tc);

    /* a policy that is not a range */
    char err[100];
    tls_policy bad = {CERT_VALID, TLS_V1_3, TLS_V1_2};
    assert_null(tls_conn_new(ts, &bad, err, sizeof(err)));
    assert_string_equal(err, "invalid TLS policy");
    bad = (tls_policy){CERT_KIND_COUNT, TLS_V1_2, TLS_V1_3};
    assert_null(tls_conn_new(ts, &bad, err, sizeof(err)));
    tls_server_free(ts);
}

/* -- bad input ---------------------------------------------------------------------------------------------
 */

static tls_conn *fed(tls_server *ts, const char *data, size_t len)
{
    tls_conn *tc = conn(ts, CERT_VALID, TLS_V1_2, TLS_V1_3);
    assert_int_equal(tls_conn_feed(tc, data, len), 0);
    return tc;
}

static void test_garbage_input(void **state)
{
    (void)state;
    tls_server *ts = server();
    tls_conn *tc = conn(ts, CERT_VALID, TLS_V1_2, TLS_V1_3);
    assert_int_equal(tls_conn_handshake(tc), TLS_WANT); /* nothing yet */
    assert_string_equal(tls_conn_error(tc), "TLS error");
    tls_conn_free(tc);

    static const unsigned char junk[] = {0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff};
    tc = fed(ts, (const char *)junk, sizeof(junk));
    assert_int_equal(tls_conn_handshake(tc), TLS_FAILED);
    assert_true(strlen(tls_conn_error(tc)) > 0);
    assert_string_not_equal(tls_conn_error(tc), "TLS error");
    assert_null(strstr(tls_conn_error(tc), "plaintext"));
    tls_conn_free(tc);

    static const unsigned char binary[] = {0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    tc = fed(ts, (const char *)binary, sizeof(binary));
    assert_int_equal(tls_conn_handshake(tc), TLS_FAILED);
    assert_true(strlen(tls_conn_error(tc)) > 0);
    tls_conn_free(tc);

    /* a plaintext client on the implicit-TLS port */
    tc = fed(ts, "EHLO x\r\n", 8);
    assert_int_equal(tls_conn_handshake(tc), TLS_FAILED);
    assert_string_equal(tls_conn_error(tc),
                        "the client sent plaintext (\"EHLO x...\") instead of a TLS ClientHello");
    tls_conn_free(tc);

    /* the client goes away mid-handshake */
    client *c = client_new(WOLFSSL_TLSV1_2, TLS1_3_VERSION);
    tc = conn(ts, CERT_VALID, TLS_V1_2, TLS_V1_3);
    client_step(c);
    to_server(c, tc);
    assert_int_equal(tls_conn_handshake(tc), TLS_WANT);
    assert_int_equal(tls_conn_feed(tc, NULL, 0), 0);
    assert_int_equal(tls_conn_handshake(tc), TLS_FAILED);
    assert_string_equal(tls_conn_error(tc), "the client closed the connection during the TLS handshake");
    client_free(c);
    tls_conn_free(tc);

    /* input past the limit is refused */
    static char big[200 * 1024];
    tc = conn(ts, CERT_VALID, TLS_V1_2, TLS_V1_3);
    assert_int_equal(tls_conn_feed(tc, big, sizeof(big)), 0);
    assert_int_equal(tls_conn_feed(tc, big, sizeof(big)), -1);
    size_t len = 1;
    assert_null(tls_conn_take_output(tc, &len));
    assert_int_equal(len, 0);
    tls_conn_free(tc);
    tls_server_free(ts);
}

static void test_alert_record(void **state)
{
    (void)state;
    unsigned char rec[7];
    assert_int_equal(tls_alert_record(40, rec), 7);
    static const unsigned char want[7] = {21, 3, 3, 0, 2, 2, 40};
    assert_memory_equal(rec, want, 7);
    assert_int_equal(tls_alert_record(112, rec), 7);
    assert_int_equal(rec[6], 112);
}

/* -- the PKI's files ---------------------------------------------------------------------------------------
 */

static void temp_dir(char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, size, "%s/smtpfault-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(out));
}

static void remove_tree(const char *dir)
{
    static const char *const files[] = {"ca",         "untrusted-ca", "server",   "expired",
                                        "wrong-host", "self-signed",  "untrusted"};
    char path[600];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof(path), "%s/%s.%s", dir, files[i], k ? "key" : "pem");
            unlink(path);
        }
    snprintf(path, sizeof(path), "%s/README", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/cert.pem", dir);
    unlink(path);
    rmdir(dir);
}

static void assert_same_pair(const cert_pair *a, const cert_pair *b)
{
    assert_string_equal(a->cert, b->cert);
    assert_string_equal(a->key, b->key);
}

static void test_cert_files(void **state)
{
    (void)state;
    char dir[512], err[600];
    temp_dir(dir, sizeof(dir));
    cert_set loaded;
    assert_int_equal(cert_set_load(&loaded, dir, err, sizeof(err)), 1); /* no set there yet */

    assert_int_equal(cert_set_write(&pki, dir, err, sizeof(err)), 0);
    char path[600];
    struct stat st;
    snprintf(path, sizeof(path), "%s/server.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* private keys are not for others */
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    char *readme = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/README", dir);
    assert_int_equal(fsutil_read(path, 65536, &readme, &len), 0);
    assert_non_null(strstr(readme, "wrong_host"));
    assert_non_null(strstr(readme, "self-signed.pem, self-signed.key"));
    free(readme);

    assert_int_equal(cert_set_load(&loaded, dir, err, sizeof(err)), 0);
    assert_same_pair(&loaded.ca, &pki.ca);
    assert_same_pair(&loaded.untrusted_ca, &pki.untrusted_ca);
    for (int i = 0; i < CERT_KIND_COUNT; i++)
        assert_same_pair(&loaded.server[i], &pki.server[i]);

    /* the loaded set serves */
    char e2[200];
    tls_server *ts = tls_server_new(&loaded, e2, sizeof(e2));
    assert_non_null(ts);
    tls_conn *tc = conn(ts, CERT_VALID, TLS_V1_3, TLS_V1_3);
    client *c = client_new(WOLFSSL_TLSV1_2, TLS1_3_VERSION);
    assert_int_equal(handshake(c, tc), TLS_DONE);
    client_free(c);
    tls_conn_free(tc);
    tls_server_free(ts);

    /* a set missing a file is an error, and leaks nothing */
    cert_set_free(&loaded);
    snprintf(path, sizeof(path), "%s/expired.key", dir);
    unlink(path);
    assert_int_equal(cert_set_load(&loaded, dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot read"));
    assert_non_null(strstr(err, "expired.key"));
    remove_tree(dir);
}

static void test_cert_use(void **state)
{
    (void)state;
    char dir[512], err[600], cert[600], key[600];
    temp_dir(dir, sizeof(dir));
    assert_int_equal(cert_set_write(&pki, dir, err, sizeof(err)), 0);
    snprintf(cert, sizeof(cert), "%s/self-signed.pem", dir);
    snprintf(key, sizeof(key), "%s/self-signed.key", dir);

    cert_set cs;
    assert_int_equal(cert_set_load(&cs, dir, err, sizeof(err)), 0);
    /* files that are not there */
    assert_int_equal(cert_set_use(&cs, "/nonexistent/cert.pem", key, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot read /nonexistent/cert.pem"));
    assert_int_equal(cert_set_use(&cs, cert, "/nonexistent/key.pem", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot read /nonexistent/key.pem"));
    assert_same_pair(&cs.server[CERT_VALID], &pki.server[CERT_VALID]); /* unchanged */
    /* the user's own pair replaces the valid one */
    assert_int_equal(cert_set_use(&cs, cert, key, err, sizeof(err)), 0);
    assert_same_pair(&cs.server[CERT_VALID], &pki.server[CERT_SELF_SIGNED]);

    /* a file that is not a certificate: the server does not start */
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    assert_int_equal(fsutil_write(cert, "not a certificate\n", 18, 0644, 0), 0);
    assert_int_equal(cert_set_use(&cs, cert, key, err, sizeof(err)), 0);
    char e2[200];
    assert_null(tls_server_new(&cs, e2, sizeof(e2)));
    assert_string_equal(e2, "TLS 1.2-1.3: bad certificate (PEM)");
    /* a key that does not match the certificate */
    snprintf(cert, sizeof(cert), "%s/server.pem", dir);
    assert_int_equal(cert_set_use(&cs, cert, key, err, sizeof(err)), 0);
    /* wolfSSL_CTX_check_private_key passes a mismatched ECDSA pair: the start-up handshake catches it. */
    assert_null(tls_server_new(&cs, e2, sizeof(e2)));
    assert_non_null(strstr(e2, "a test handshake with the certificate failed"));
    assert_non_null(strstr(e2, "does the key belong to the certificate?"));
    cert_set_free(&cs);
    remove_tree(dir);
}

static int setup(void **state)
{
    (void)state;
    wolfSSL_Init(); /* kept up between tests: tls_server_free cleans up after each server */
    char err[200];
    if (cert_set_generate(&pki, HOST, err, sizeof(err)) != 0) {
        print_error("cert_set_generate: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cert_set_free(&pki);
    wolfSSL_Cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_tls13), cmocka_unit_test(test_handshake_tls12),
        cmocka_unit_test(test_default_policy),  cmocka_unit_test(test_bad_certificates),
        cmocka_unit_test(test_version_policy),  cmocka_unit_test(test_garbage_input),
        cmocka_unit_test(test_alert_record),    cmocka_unit_test(test_cert_files),
        cmocka_unit_test(test_cert_use),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
