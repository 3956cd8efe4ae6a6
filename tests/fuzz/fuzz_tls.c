/*
 * fuzz_tls.c - arbitrary bytes as the ciphertext a client sends to the TLS layer (server side).
 *
 * The first byte picks the certificate and the version range; the rest is fed in chunks, driving the
 * handshake and then the record reader as conn.c does. Nothing may crash or leak, whatever wolfSSL makes
 * of the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "certs.h"
#include "tls.h"

static tls_server *ts;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    cert_set cs;
    char err[300];
    if (cert_set_generate(&cs, "localhost", err, sizeof(err)) != 0 ||
        (ts = tls_server_new(&cs, err, sizeof(err))) == NULL) {
        fprintf(stderr, "fuzz_tls: %s\n", err);
        abort();
    }
    cert_set_free(&cs);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    tls_policy p = TLS_POLICY_DEFAULT;
    p.cert = (cert_kind)(data[0] % CERT_KIND_COUNT);
    p.min = (tls_version)((data[0] >> 3) % TLS_VERSION_COUNT);
    p.max = (tls_version)(p.min + (data[0] >> 5) % (TLS_VERSION_COUNT - p.min));
    data++;
    size--;
    char err[200];
    tls_conn *tc = tls_conn_new(ts, &p, err, sizeof(err));
    if (tc == NULL)
        return 0;
    int done = 0;
    char plain[16384];
    for (size_t off = 0; off < size;) {
        size_t chunk = size - off > 700 ? 700 : size - off;
        if (tls_conn_feed(tc, (const char *)data + off, chunk) != 0)
            break;
        off += chunk;
        if (!done) {
            tls_status st = tls_conn_handshake(tc);
            if (st == TLS_FAILED)
                break;
            done = st == TLS_DONE;
        }
        if (done) {
            int n;
            while ((n = tls_conn_read(tc, plain, sizeof(plain))) > 0)
                (void)tls_conn_write(tc, plain, (size_t)n);
            if (n < 0)
                break;
        }
        size_t len;
        free(tls_conn_take_output(tc, &len));
    }
    (void)tls_conn_error(tc);
    tls_conn_close_notify(tc);
    size_t len;
    free(tls_conn_take_output(tc, &len));
    tls_conn_free(tc);
    return 0;
}
