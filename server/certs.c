/*
 * certs.c - test PKI generation with wolfCrypt (ECDSA P-256, SHA-256), and its files.
 *
 * wolfCrypt builds the certificates; two small DER pieces are assembled here because its Cert structure
 * takes them raw: the subjectAltName list (GeneralNames, RFC 5280 section 4.2.1.6) and, for the expired
 * certificate, explicit validity dates (UTCTime, section 4.1.2.5.1). Everything else is wolfCrypt's.
 */
#include "certs.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include <unistd.h>

#include <uv.h>

#include "fault.h"
#include "fsutil.h"

#define CERT_DER_MAX    4096
#define CERT_PEM_MAX    8192
#define CERT_FILE_MAX   (64 * 1024)
#define CERT_DAYS_VALID 3650 /* long enough that a test PKI written today keeps working */
#define WRONG_HOST_NAME "wrong-host.invalid"
#define CERT_SAN_MAX    600 /* a 255-byte host name, localhost and two addresses fit */

static const char *const kind_stems[] = {
#define CERT_KIND_STEM(e, name, stem, what) stem,
    FAULT_CERT_LIST(CERT_KIND_STEM)
#undef CERT_KIND_STEM
};

static const char *const kind_whats[] = {
#define CERT_KIND_WHAT(e, name, stem, what) what,
    FAULT_CERT_LIST(CERT_KIND_WHAT)
#undef CERT_KIND_WHAT
};

/* -- DER pieces ----------------------------------------------------------------------------------------- */

/* der_put - append tag, definite length and value at *o (room checked by the caller's bound) */
static size_t der_put(unsigned char *out, size_t o, size_t cap, unsigned char tag, const void *val,
                      size_t len)
{
    if (o + 4 + len > cap || len > 0xFFFF)
        return cap + 1;
    out[o++] = tag;
    if (len < 0x80) {
        out[o++] = (unsigned char)len;
    } else if (len <= 0xFF) {
        out[o++] = 0x81;
        out[o++] = (unsigned char)len;
    } else {
        out[o++] = 0x82;
        out[o++] = (unsigned char)(len >> 8);
        out[o++] = (unsigned char)len;
    }
    memcpy(out + o, val, len);
    return o + len;
}

/* san_der - GeneralNames: dNSName [2] for host (and localhost), iPAddress [7] for 127.0.0.1 and ::1 */
static int san_der(const char *host, int with_local, unsigned char *out, size_t cap)
{
    unsigned char names[CERT_SAN_MAX];
    size_t o = der_put(names, 0, sizeof(names), 0x82, host, strlen(host));
    if (with_local) {
        static const unsigned char v4[4] = {127, 0, 0, 1};
        static const unsigned char v6[16] = {[15] = 1};
        if (strcmp(host, "localhost") != 0)
            o = der_put(names, o, sizeof(names), 0x82, "localhost", 9);
        o = der_put(names, o, sizeof(names), 0x87, v4, sizeof(v4));
        o = der_put(names, o, sizeof(names), 0x87, v6, sizeof(v6));
    }
    if (o > sizeof(names))
        return -1;
    size_t n = der_put(out, 0, cap, 0x30, names, o);
    return n > cap ? -1 : (int)n;
}

/* utc_time - UTCTime TLV for a YYMMDDhhmmssZ string */
static int utc_time(const char *text, unsigned char *out, size_t cap)
{
    size_t n = der_put(out, 0, cap, 0x17, text, strlen(text));
    return n > cap ? -1 : (int)n;
}

/* -- generation ----------------------------------------------------------------------------------------- */

typedef struct keyed {
    ecc_key key;
    unsigned char der[CERT_DER_MAX]; /* the certificate */
    int der_len;
} keyed;

typedef struct cert_spec {
    const char *cn;
    const char *san_host; /* NULL: no subjectAltName (a CA) */
    int with_local;       /* also localhost, 127.0.0.1, ::1 */
    int is_ca;
    int expired;
    keyed *issuer; /* NULL: self-signed */
} cert_spec;

/* to_pem - DER to a malloc'd PEM string of the given type (CERT_TYPE, ECC_PRIVATEKEY_TYPE) */
static char *to_pem(const unsigned char *der, int len, int type)
{
    unsigned char pem[CERT_PEM_MAX];
    int n = wc_DerToPem(der, (word32)len, pem, sizeof(pem), type);
    if (n <= 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s != NULL) {
        memcpy(s, pem, (size_t)n);
        s[n] = '\0';
    }
    return s;
}

/* make_cert - a key and a certificate for it, as spec says; 0 or a wolfCrypt error code */
static int make_cert(WC_RNG *rng, const cert_spec *spec, keyed *k)
{
    int r = wc_ecc_init(&k->key);
    if (r != 0)
        return r;
    r = wc_ecc_make_key(rng, 32, &k->key);
    if (r != 0)
        return r;
    Cert *c = malloc(sizeof(*c)); /* about 20 KiB: not for the stack */
    if (c == NULL)
        return MEMORY_E;
    r = wc_InitCert(c);
    if (r != 0)
        goto end;
    c->sigType = CTC_SHA256wECDSA;
    c->daysValid = CERT_DAYS_VALID;
    snprintf(c->subject.country, CTC_NAME_SIZE, "ZZ");
    snprintf(c->subject.org, CTC_NAME_SIZE, "smtpfault test PKI (not for production)");
    snprintf(c->subject.commonName, CTC_NAME_SIZE, "%s", spec->cn);
    if (spec->is_ca) {
        c->isCA = 1;
        if ((r = wc_SetKeyUsage(c, "keyCertSign,cRLSign,digitalSignature")) != 0)
            goto end;
    } else {
        if ((r = wc_SetKeyUsage(c, "digitalSignature")) != 0 || (r = wc_SetExtKeyUsage(c, "serverAuth")) != 0)
            goto end;
    }
    if (spec->san_host != NULL) {
        int n = san_der(spec->san_host, spec->with_local, c->altNames, sizeof(c->altNames));
        if (n < 0) {
            r = BUFFER_E;
            goto end;
        }
        c->altNamesSz = n;
    }
    if (spec->expired) {
        int b = utc_time("190101000000Z", c->beforeDate, sizeof(c->beforeDate));
        int a = utc_time("200101000000Z", c->afterDate, sizeof(c->afterDate));
        if (a < 0 || b < 0) {
            r = BUFFER_E;
            goto end;
        }
        c->beforeDateSz = b;
        c->afterDateSz = a;
    }
    if ((r = wc_SetSubjectKeyIdFromPublicKey_ex(c, ECC_TYPE, &k->key)) != 0)
        goto end;
    ecc_key *signer = &k->key;
    if (spec->issuer != NULL) {
        c->selfSigned = 0;
        signer = &spec->issuer->key;
        if ((r = wc_SetIssuerBuffer(c, spec->issuer->der, spec->issuer->der_len)) != 0 ||
            (r = wc_SetAuthKeyIdFromPublicKey_ex(c, ECC_TYPE, signer)) != 0)
            goto end;
    } else if ((r = wc_SetAuthKeyIdFromPublicKey_ex(c, ECC_TYPE, &k->key)) != 0) {
        goto end;
    }
    r = wc_MakeCert_ex(c, k->der, sizeof(k->der), ECC_TYPE, &k->key, rng);
    if (r < 0)
        goto end;
    r = wc_SignCert_ex(c->bodySz, c->sigType, k->der, sizeof(k->der), ECC_TYPE, signer, rng);
    if (r < 0)
        goto end;
    k->der_len = r;
    r = 0;
end:
    free(c);
    return r;
}

/* export_pair - PEM of k's certificate and key */
static int export_pair(keyed *k, cert_pair *out)
{
    unsigned char der[CERT_DER_MAX];
    int n = wc_EccKeyToDer(&k->key, der, sizeof(der));
    if (n <= 0)
        return -1;
    out->cert = to_pem(k->der, k->der_len, CERT_TYPE);
    out->key = to_pem(der, n, ECC_PRIVATEKEY_TYPE);
    return out->cert && out->key ? 0 : -1;
}

int cert_set_generate(cert_set *cs, const char *hostname, char *err, size_t errsz)
{
    memset(cs, 0, sizeof(*cs));
    enum { K_CA, K_UNTRUSTED_CA, K_FIRST_SERVER, K_COUNT = K_FIRST_SERVER + CERT_KIND_COUNT };
    keyed *k = calloc(K_COUNT, sizeof(*k));
    WC_RNG rng;
    int r = k == NULL ? MEMORY_E : wc_InitRng(&rng);
    if (r != 0) {
        free(k);
        snprintf(err, errsz, "cannot start the random number generator: %s", wc_GetErrorString(r));
        return -1;
    }
    const cert_spec specs[K_COUNT] = {
        [K_CA] = {"smtpfault test CA", NULL, 0, 1, 0, NULL},
        [K_UNTRUSTED_CA] = {"smtpfault untrusted CA", NULL, 0, 1, 0, NULL},
        [K_FIRST_SERVER + CERT_VALID] = {hostname, hostname, 1, 0, 0, &k[K_CA]},
        [K_FIRST_SERVER + CERT_EXPIRED] = {hostname, hostname, 1, 0, 1, &k[K_CA]},
        [K_FIRST_SERVER + CERT_WRONG_HOST] = {WRONG_HOST_NAME, WRONG_HOST_NAME, 0, 0, 0, &k[K_CA]},
        [K_FIRST_SERVER + CERT_SELF_SIGNED] = {hostname, hostname, 1, 0, 0, NULL},
        [K_FIRST_SERVER + CERT_UNTRUSTED] = {hostname, hostname, 1, 0, 0, &k[K_UNTRUSTED_CA]},
    };
    int made = 0, failed = 0;
    for (int i = 0; i < K_COUNT && !failed; i++, made++) {
        r = make_cert(&rng, &specs[i], &k[i]);
        if (r != 0) {
            snprintf(err, errsz, "cannot make the %s certificate: %s", specs[i].cn, wc_GetErrorString(r));
            failed = 1;
        }
    }
    if (!failed) {
        failed =
            export_pair(&k[K_CA], &cs->ca) != 0 || export_pair(&k[K_UNTRUSTED_CA], &cs->untrusted_ca) != 0;
        for (int i = 0; i < CERT_KIND_COUNT && !failed; i++)
            failed = export_pair(&k[K_FIRST_SERVER + i], &cs->server[i]) != 0;
        if (failed)
            snprintf(err, errsz, "cannot encode the certificates as PEM");
    }
    for (int i = 0; i < made; i++)
        wc_ecc_free(&k[i].key);
    wc_FreeRng(&rng);
    free(k);
    if (failed) {
        cert_set_free(cs);
        return -1;
    }
    return 0;
}

/* -- files ---------------------------------------------------------------------------------------------- */

static const char readme_head[] =
    "smtpfault test PKI\n"
    "==================\n"
    "\n"
    "Written by `smtpfault certs DIR` (or by the server with --certs-dir DIR). FOR TESTS ONLY: the private\n"
    "keys are in this directory, unencrypted. Every certificate is ECDSA P-256 / SHA-256.\n"
    "\n"
    "Give your mail client ca.pem as its trust anchor. The server presents server.pem unless a fault\n"
    "profile asks for another (\"tls\": {\"certificate\": NAME}):\n"
    "\n";

static char *readme_text(void)
{
    size_t cap = sizeof(readme_head) + 2048;
    char *s = malloc(cap);
    if (s == NULL)
        return NULL;
    size_t o = (size_t)snprintf(s, cap, "%s", readme_head);
    o += (size_t)snprintf(s + o, cap - o, "  %-18s %-34s %s\n", "profile name", "files", "what it is");
    o += (size_t)snprintf(s + o, cap - o, "  %-18s %-34s %s\n", "-", "ca.pem, ca.key",
                          "the CA to trust; signs the server certificates below");
    for (int i = 0; i < CERT_KIND_COUNT; i++) {
        char files[64];
        snprintf(files, sizeof(files), "%s.pem, %s.key", kind_stems[i], kind_stems[i]);
        o += (size_t)snprintf(s + o, cap - o, "  %-18s %-34s %s\n", fault_cert_name(i), files, kind_whats[i]);
    }
    snprintf(s + o, cap - o, "  %-18s %-34s %s\n", "-", "untrusted-ca.pem, .key",
             "the CA behind untrusted.pem; do not trust it");
    return s;
}

static int write_one(const char *dir, const char *name, const char *text, int mode, char *err, size_t errsz)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    int r = n < 0 || (size_t)n >= sizeof(path) ? UV_ENAMETOOLONG
                                               : fsutil_write(path, text, strlen(text), mode, 1);
    if (r != 0)
        snprintf(err, errsz, "cannot write %s: %s", path, uv_strerror(r));
    return r == 0 ? 0 : -1;
}

static int write_pair(const char *dir, const char *stem, const cert_pair *p, char *err, size_t errsz)
{
    char name[64];
    snprintf(name, sizeof(name), "%s.pem", stem);
    if (write_one(dir, name, p->cert, 0644, err, errsz) != 0)
        return -1;
    snprintf(name, sizeof(name), "%s.key", stem);
    return write_one(dir, name, p->key, 0600, err, errsz);
}

int cert_set_write(const cert_set *cs, const char *dir, char *err, size_t errsz)
{
    int r = fsutil_mkdir(dir, 0755);
    if (r != 0) {
        snprintf(err, errsz, "cannot create %s: %s", dir, uv_strerror(r));
        return -1;
    }
    if (write_pair(dir, "untrusted-ca", &cs->untrusted_ca, err, errsz) != 0)
        return -1;
    for (int i = 0; i < CERT_KIND_COUNT; i++)
        if (write_pair(dir, kind_stems[i], &cs->server[i], err, errsz) != 0)
            return -1;
    char *readme = readme_text();
    if (readme == NULL) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    r = write_one(dir, "README", readme, 0644, err, errsz);
    free(readme);
    /* ca.pem last: its presence is what cert_set_load takes for a complete set. */
    if (r != 0 || write_pair(dir, "ca", &cs->ca, err, errsz) != 0)
        return -1;
    return 0;
}

static int read_text(const char *path, char **out, char *err, size_t errsz)
{
    size_t len;
    int r = fsutil_read(path, CERT_FILE_MAX, out, &len);
    if (r != 0) {
        snprintf(err, errsz, "cannot read %s: %s", path, uv_strerror(r));
        return -1;
    }
    return 0;
}

static int read_pair(const char *dir, const char *stem, cert_pair *p, char *err, size_t errsz)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.pem", dir, stem);
    if (read_text(path, &p->cert, err, errsz) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s.key", dir, stem);
    return read_text(path, &p->key, err, errsz);
}

int cert_set_load(cert_set *cs, const char *dir, char *err, size_t errsz)
{
    memset(cs, 0, sizeof(*cs));
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    uv_fs_t req;
    int r = uv_fs_access(NULL, &req, path, R_OK, NULL);
    uv_fs_req_cleanup(&req);
    if (r == UV_ENOENT)
        return 1;
    int bad = read_pair(dir, "ca", &cs->ca, err, errsz) != 0 ||
              read_pair(dir, "untrusted-ca", &cs->untrusted_ca, err, errsz) != 0;
    for (int i = 0; i < CERT_KIND_COUNT && !bad; i++)
        bad = read_pair(dir, kind_stems[i], &cs->server[i], err, errsz) != 0;
    if (bad) {
        cert_set_free(cs);
        return -1;
    }
    return 0;
}

int cert_set_use(cert_set *cs, const char *cert_file, const char *key_file, char *err, size_t errsz)
{
    cert_pair p = {NULL, NULL};
    if (read_text(cert_file, &p.cert, err, errsz) != 0 || read_text(key_file, &p.key, err, errsz) != 0) {
        free(p.cert);
        return -1;
    }
    free(cs->server[CERT_VALID].cert);
    free(cs->server[CERT_VALID].key);
    cs->server[CERT_VALID] = p;
    return 0;
}

static void pair_free(cert_pair *p)
{
    free(p->cert);
    free(p->key);
    p->cert = p->key = NULL;
}

void cert_set_free(cert_set *cs)
{
    pair_free(&cs->ca);
    pair_free(&cs->untrusted_ca);
    for (int i = 0; i < CERT_KIND_COUNT; i++)
        pair_free(&cs->server[i]);
}
