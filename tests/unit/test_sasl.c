/* test_sasl.c - the SASL exchanges of SMTP AUTH (server/sasl.c): PLAIN, LOGIN, CRAM-MD5, XOAUTH2 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/hmac.h>

#include "sasl.h"

#define OUT_MAX 16384

/* -- helpers ------------------------------------------------------------------------------------------- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64 - base64 of n raw bytes, written independently of the code under test */
static char *b64(const char *raw, size_t n)
{
    static char out[OUT_MAX];
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)raw[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)raw[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* unb64 - the text of a challenge (well-formed base64 only) */
static char *unb64(const char *in)
{
    static char out[OUT_MAX];
    size_t o = 0, len = strlen(in);
    for (size_t i = 0; i + 3 < len; i += 4) {
        unsigned v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            const char *p = in[i + j] == '=' ? NULL : strchr(b64_alphabet, in[i + j]);
            pad += p == NULL;
            v = v << 6 | (p ? (unsigned)(p - b64_alphabet) : 0);
        }
        out[o++] = (char)(v >> 16);
        if (pad < 2)
            out[o++] = (char)(v >> 8);
        if (pad < 1)
            out[o++] = (char)v;
    }
    out[o] = '\0';
    return out;
}

static const char *const names[] = {"tim", "anna@example.com", "empty"};
static const char *const passwords[] = {"tanstaaftanstaaf", "s3cret", ""};
static const sasl_users users = {names, passwords, 3};
static const sasl_users no_users = {NULL, NULL, 0};

static const sasl_context ctx_users = {&users, "mx.test", 42};
static const sasl_context ctx_open = {&no_users, "mx.test", 43};
static const sasl_context ctx_null = {NULL, "mx.test", 44};

typedef struct exchange {
    sasl_exchange x;
    const sasl_context *ctx;
    char out[SASL_CHALLENGE_MAX];
} exchange;

/* start - AUTH mech with the raw initial response base64-encoded (raw NULL: no initial response) */
static sasl_result start(exchange *e, sasl_mech m, const char *raw, size_t n)
{
    memset(e->out, 'z', sizeof(e->out));
    return sasl_start(&e->x, m, raw ? b64(raw, n) : NULL, raw ? strlen(b64(raw, n)) : 0, e->ctx, e->out,
                      sizeof(e->out));
}

/* start_line - AUTH mech with the initial response exactly as the client sent it */
static sasl_result start_line(exchange *e, sasl_mech m, const char *line)
{
    return sasl_start(&e->x, m, line, strlen(line), e->ctx, e->out, sizeof(e->out));
}

static sasl_result step(exchange *e, const char *raw, size_t n)
{
    const char *line = b64(raw, n);
    return sasl_step(&e->x, line, strlen(line), e->ctx, e->out, sizeof(e->out));
}

static sasl_result step_line(exchange *e, const char *line)
{
    return sasl_step(&e->x, line, strlen(line), e->ctx, e->out, sizeof(e->out));
}

#define RAW(s) s, sizeof(s) - 1

/* -- mechanisms ------------------------------------------------------------------------------------------ */

static void test_mech_names(void **state)
{
    (void)state;
    assert_string_equal(sasl_mech_name(SASL_PLAIN), "PLAIN");
    assert_string_equal(sasl_mech_name(SASL_CRAM_MD5), "CRAM-MD5");
    assert_string_equal(sasl_mech_name(SASL_MECH_COUNT), "?");
    assert_int_equal(sasl_mech_parse("cram-md5", 8), SASL_CRAM_MD5);
    assert_int_equal(sasl_mech_parse("XOAUTH2", 7), SASL_XOAUTH2);
    assert_int_equal(sasl_mech_parse("login", 5), SASL_LOGIN);
    assert_int_equal(sasl_mech_parse("PLAINX", 6), -1);
    assert_int_equal(sasl_mech_parse("PLAIN", 4), -1);
    assert_int_equal(sasl_mech_parse("", 0), -1);
    assert_true(sasl_mech_is_plaintext(SASL_PLAIN));
    assert_true(sasl_mech_is_plaintext(SASL_LOGIN));
    assert_true(sasl_mech_is_plaintext(SASL_XOAUTH2));
    assert_false(sasl_mech_is_plaintext(SASL_CRAM_MD5));
    assert_int_equal(SASL_ALL_MECHS, 15);
}

static void test_plain(void **state)
{
    (void)state;
    exchange e = {.ctx = &ctx_users};
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0tim\0tanstaaftanstaaf")), SASL_OK);
    assert_string_equal(e.x.user, "tim");
    /* with an authorization identity: the authentication identity is the user */
    assert_int_equal(start(&e, SASL_PLAIN, RAW("admin\0anna@example.com\0s3cret")), SASL_OK);
    assert_string_equal(e.x.user, "anna@example.com");
    /* without an initial response: an empty challenge, then the response */
    assert_int_equal(start(&e, SASL_PLAIN, NULL, 0), SASL_CHALLENGE);
    assert_string_equal(e.out, "");
    assert_int_equal(step(&e, RAW("\0tim\0tanstaaftanstaaf")), SASL_OK);
    assert_string_equal(e.x.user, "tim");
    /* wrong password, unknown user, a password that is a prefix, another user's password */
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0tim\0wrong")), SASL_BAD_CREDS);
    assert_string_equal(e.x.user, "tim");
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0nobody\0tanstaaftanstaaf")), SASL_BAD_CREDS);
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0tim\0tanstaaf")), SASL_BAD_CREDS);
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0tim\0s3cret")), SASL_BAD_CREDS);
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0TIM\0tanstaaftanstaaf")), SASL_BAD_CREDS);
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0empty\0")), SASL_OK); /* an empty password */
    /* not "[authzid] NUL authcid NUL passwd" */
    assert_int_equal(start(&e, SASL_PLAIN, RAW("tim tanstaaftanstaaf")), SASL_BAD_SYNTAX);
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0tim")), SASL_BAD_SYNTAX);
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0tim\0pw\0")), SASL_BAD_SYNTAX);
    assert_int_equal(start(&e, SASL_PLAIN, RAW("\0\0pw")), SASL_BAD_SYNTAX); /* no user */
    assert_int_equal(start_line(&e, SASL_PLAIN, "="), SASL_BAD_SYNTAX);      /* empty */
    assert_int_equal(start(&e, SASL_PLAIN, NULL, 0), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "="), SASL_BAD_SYNTAX);
    assert_int_equal(step_line(&e, ""), SASL_BAD_SYNTAX);
}

static void test_login(void **state)
{
    (void)state;
    exchange e = {.ctx = &ctx_users};
    /* two steps: Username:, Password: */
    assert_int_equal(start(&e, SASL_LOGIN, NULL, 0), SASL_CHALLENGE);
    assert_string_equal(unb64(e.out), "Username:");
    assert_int_equal(step(&e, RAW("tim")), SASL_CHALLENGE);
    assert_string_equal(unb64(e.out), "Password:");
    assert_string_equal(e.x.user, "tim");
    assert_int_equal(step(&e, RAW("tanstaaftanstaaf")), SASL_OK);
    /* the user name as initial response (RFC 4954 style): straight to Password: */
    assert_int_equal(start(&e, SASL_LOGIN, RAW("anna@example.com")), SASL_CHALLENGE);
    assert_string_equal(e.out, "UGFzc3dvcmQ6");
    assert_int_equal(step(&e, RAW("s3cret")), SASL_OK);
    assert_string_equal(e.x.user, "anna@example.com");
    /* wrong credentials */
    assert_int_equal(start(&e, SASL_LOGIN, RAW("tim")), SASL_CHALLENGE);
    assert_int_equal(step(&e, RAW("s3cret")), SASL_BAD_CREDS);
    assert_int_equal(start(&e, SASL_LOGIN, RAW("nobody")), SASL_CHALLENGE);
    assert_int_equal(step(&e, RAW("x")), SASL_BAD_CREDS);
    /* "=" is the empty response: an empty user is refused, an empty password is one */
    assert_int_equal(start_line(&e, SASL_LOGIN, "="), SASL_BAD_SYNTAX);
    assert_int_equal(start(&e, SASL_LOGIN, RAW("empty")), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "="), SASL_OK);
    assert_int_equal(start(&e, SASL_LOGIN, RAW("tim")), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "="), SASL_BAD_CREDS);
    /* a user name with a NUL */
    assert_int_equal(start(&e, SASL_LOGIN, NULL, 0), SASL_CHALLENGE);
    assert_int_equal(step(&e, RAW("ti\0m")), SASL_BAD_SYNTAX);
}

/* hmac_md5_hex - the CRAM-MD5 response digest, computed here with wolfCrypt */
static void hmac_md5_hex(const char *key, const char *text, char hex[33])
{
    Hmac h;
    byte mac[WC_MD5_DIGEST_SIZE];
    assert_int_equal(wc_HmacInit(&h, NULL, INVALID_DEVID), 0);
    assert_int_equal(wc_HmacSetKey(&h, WC_MD5, (const byte *)key, (word32)strlen(key)), 0);
    assert_int_equal(wc_HmacUpdate(&h, (const byte *)text, (word32)strlen(text)), 0);
    assert_int_equal(wc_HmacFinal(&h, mac), 0);
    wc_HmacFree(&h);
    for (int i = 0; i < WC_MD5_DIGEST_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

static sasl_result cram_step(exchange *e, const char *response)
{
    return step(e, response, strlen(response));
}

static void test_cram_md5(void **state)
{
    (void)state;
    exchange e = {.ctx = &ctx_users};
    /* the server speaks first: "<nonce.time@hostname>" */
    assert_int_equal(start(&e, SASL_CRAM_MD5, NULL, 0), SASL_CHALLENGE);
    const char *challenge = unb64(e.out);
    assert_string_equal(challenge, e.x.challenge);
    assert_true(strncmp(challenge, "<42.", 4) == 0);
    assert_true(strlen(challenge) > 13 && strcmp(challenge + strlen(challenge) - 9, "@mx.test>") == 0);

    /* RFC 2195 section 2, word for word */
    snprintf(e.x.challenge, sizeof(e.x.challenge), "<1896.697170952@postoffice.reston.mci.net>");
    assert_int_equal(cram_step(&e, "tim b913a602c7eda7a495b4e6e7334d3890"), SASL_OK);
    assert_string_equal(e.x.user, "tim");
    assert_int_equal(cram_step(&e, "tim b913a602c7eda7a495b4e6e7334d3891"), SASL_BAD_CREDS);
    assert_int_equal(cram_step(&e, "tim B913A602C7EDA7A495B4E6E7334D3890"), SASL_BAD_SYNTAX);
    assert_int_equal(cram_step(&e, "tim b913a602c7eda7a495b4e6e7334d389"), SASL_BAD_SYNTAX);
    assert_int_equal(cram_step(&e, "timb913a602c7eda7a495b4e6e7334d3890"), SASL_BAD_SYNTAX);
    assert_int_equal(cram_step(&e, " b913a602c7eda7a495b4e6e7334d3890"), SASL_BAD_SYNTAX);
    assert_int_equal(cram_step(&e, "tim b913a602c7eda7a495b4e6e7334d38zz"), SASL_BAD_SYNTAX);
    assert_int_equal(cram_step(&e, "nobody b913a602c7eda7a495b4e6e7334d3890"), SASL_BAD_CREDS);
    /* a user name may hold spaces: the last one separates the digest */
    assert_int_equal(cram_step(&e, "tim tim b913a602c7eda7a495b4e6e7334d3890"), SASL_BAD_CREDS);
    assert_string_equal(e.x.user, "tim tim");

    /* with the challenge the server made */
    assert_int_equal(start(&e, SASL_CRAM_MD5, NULL, 0), SASL_CHALLENGE);
    char hex[33], response[300];
    hmac_md5_hex("s3cret", e.x.challenge, hex);
    snprintf(response, sizeof(response), "anna@example.com %s", hex);
    assert_int_equal(cram_step(&e, response), SASL_OK);
    hmac_md5_hex("tanstaaftanstaaf", e.x.challenge, hex); /* tim's password for anna */
    snprintf(response, sizeof(response), "anna@example.com %s", hex);
    assert_int_equal(cram_step(&e, response), SASL_BAD_CREDS);

    /* no initial response allowed */
    assert_int_equal(start(&e, SASL_CRAM_MD5, RAW("tim")), SASL_BAD_SYNTAX);
    /* with no users, any well-formed response passes */
    e.ctx = &ctx_open;
    assert_int_equal(start(&e, SASL_CRAM_MD5, NULL, 0), SASL_CHALLENGE);
    assert_true(strncmp(unb64(e.out), "<43.", 4) == 0);
    assert_int_equal(cram_step(&e, "whoever 00000000000000000000000000000000"), SASL_OK);
    assert_int_equal(cram_step(&e, "whoever 0000"), SASL_BAD_SYNTAX);
}

static void test_xoauth2(void **state)
{
    (void)state;
    exchange e = {.ctx = &ctx_users};
    /* the bearer token is checked as the password */
    assert_int_equal(start(&e, SASL_XOAUTH2, RAW("user=anna@example.com\1auth=Bearer s3cret\1\1")), SASL_OK);
    assert_string_equal(e.x.user, "anna@example.com");
    assert_int_equal(start(&e, SASL_XOAUTH2, RAW("user=tim\1auth=bearer tanstaaftanstaaf\1\1")), SASL_OK);
    /* no initial response: an empty challenge first */
    assert_int_equal(start(&e, SASL_XOAUTH2, NULL, 0), SASL_CHALLENGE);
    assert_string_equal(e.out, "");
    assert_int_equal(step(&e, RAW("user=tim\1auth=Bearer tanstaaftanstaaf\1\1")), SASL_OK);

    /* failure: the JSON error challenge first, then whatever the client says fails */
    assert_int_equal(start(&e, SASL_XOAUTH2, RAW("user=tim\1auth=Bearer expired-token\1\1")), SASL_CHALLENGE);
    assert_string_equal(unb64(e.out),
                        "{\"status\":\"400\",\"schemes\":\"Bearer\",\"scope\":\"https://mail.google.com/\"}");
    assert_string_equal(e.x.user, "tim");
    assert_int_equal(step_line(&e, ""), SASL_BAD_CREDS);
    assert_int_equal(start(&e, SASL_XOAUTH2, RAW("user=nobody\1auth=Bearer x\1\1")), SASL_CHALLENGE);
    assert_int_equal(step(&e, RAW("user=tim\1auth=Bearer tanstaaftanstaaf\1\1")), SASL_BAD_CREDS);
    assert_int_equal(start(&e, SASL_XOAUTH2, RAW("user=nobody\1auth=Bearer x\1\1")), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "!!not base64"), SASL_BAD_CREDS);
    assert_int_equal(start(&e, SASL_XOAUTH2, RAW("user=nobody\1auth=Bearer x\1\1")), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "*"), SASL_CANCELLED);

    /* malformed */
    static const struct {
        const char *raw;
        size_t n;
    } bad[] = {
        {RAW("user=tim\1auth=Bearer x\1")},
        {RAW("user=tim\1auth=Bearer x")},
        {RAW("usr=tim\1auth=Bearer x\1\1")},
        {RAW("user=\1auth=Bearer x\1\1")},
        {RAW("user=tim\1auth=Basic x\1\1")},
        {RAW("user=tim\1\1")},
        {RAW("user=tim\1auth=Bearerx\1\1")},
        {RAW("\1\1")},
        {RAW("")},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sasl_result r =
            bad[i].n ? start(&e, SASL_XOAUTH2, bad[i].raw, bad[i].n) : start_line(&e, SASL_XOAUTH2, "=");
        if (r != SASL_BAD_SYNTAX) {
            print_error("case %zu: %d\n", i, r);
            fail();
        }
    }
    /* with no users, any token */
    e.ctx = &ctx_open;
    assert_int_equal(start(&e, SASL_XOAUTH2, RAW("user=x@y\1auth=Bearer \1\1")), SASL_OK);
}

static void test_no_users_accepts_anything(void **state)
{
    (void)state;
    const sasl_context *ctxs[] = {&ctx_open, &ctx_null};
    for (size_t i = 0; i < 2; i++) {
        exchange e = {.ctx = ctxs[i]};
        assert_int_equal(start(&e, SASL_PLAIN, RAW("\0anyone\0anything")), SASL_OK);
        assert_string_equal(e.x.user, "anyone");
        assert_int_equal(start(&e, SASL_LOGIN, RAW("someone")), SASL_CHALLENGE);
        assert_int_equal(step_line(&e, "="), SASL_OK);
        assert_int_equal(start(&e, SASL_XOAUTH2, RAW("user=me\1auth=Bearer t\1\1")), SASL_OK);
        /* syntax still matters */
        assert_int_equal(start(&e, SASL_PLAIN, RAW("anyone")), SASL_BAD_SYNTAX);
    }
}

/* -- encoding -------------------------------------------------------------------------------------------- */

static void test_malformed_base64(void **state)
{
    (void)state;
    exchange e = {.ctx = &ctx_users};
    const char *bad[] = {
        "AHRpbQB0YW5zdGFhZnRhbnN0YWFm!", /* bad alphabet */
        "AHRp bQB0",                     /* a space */
        "AHRp\tbQB0",
        "AHRp-bQ_",                    /* base64url */
        "AHRpbQB0YW5zdGFhZnRhbnN0YWF", /* bad length */
        "A",
        "AA",
        "AAA",
        "A=AA", /* misplaced '=' */
        "AA=A",
        "A===",
        "====",
        "AA==AAAA",
        "==",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (start_line(&e, SASL_PLAIN, bad[i]) != SASL_BAD_BASE64) {
            print_error("initial \"%s\" was taken\n", bad[i]);
            fail();
        }
        assert_int_equal(start(&e, SASL_LOGIN, NULL, 0), SASL_CHALLENGE);
        assert_int_equal(step_line(&e, bad[i]), SASL_BAD_BASE64);
    }
    /* padding in its place */
    assert_int_equal(start(&e, SASL_LOGIN, NULL, 0), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "dGltAA=="), SASL_BAD_SYNTAX); /* "tim\0": decoded, then refused */
    assert_int_equal(start(&e, SASL_LOGIN, NULL, 0), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "dGk="), SASL_CHALLENGE); /* "ti" */
    assert_string_equal(e.x.user, "ti");
}

static void test_cancel(void **state)
{
    (void)state;
    exchange e = {.ctx = &ctx_users};
    for (int m = 0; m < SASL_MECH_COUNT; m++)
        assert_int_equal(start_line(&e, (sasl_mech)m, "*"), SASL_CANCELLED);
    assert_int_equal(start(&e, SASL_LOGIN, NULL, 0), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "*"), SASL_CANCELLED);
    assert_int_equal(start(&e, SASL_LOGIN, RAW("tim")), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "*"), SASL_CANCELLED);
    assert_int_equal(start(&e, SASL_CRAM_MD5, NULL, 0), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "*"), SASL_CANCELLED);
    assert_int_equal(start(&e, SASL_PLAIN, NULL, 0), SASL_CHALLENGE);
    assert_int_equal(step_line(&e, "**"), SASL_BAD_BASE64);
}

static void test_long_input(void **state)
{
    (void)state;
    exchange e = {.ctx = &ctx_open};
    static char raw[9300], line[12300];
    /* past the longest line the session reads (12288 octets, RFC 4954 section 4): not taken */
    memset(line, 'A', sizeof(line) - 1);
    line[12292] = '\0';
    assert_int_equal(start_line(&e, SASL_PLAIN, line), SASL_BAD_BASE64);
    /* a response of 8190, 8193 and 9216 (the longest line: 12288 base64 octets) bytes is decoded */
    memset(raw, 'p', sizeof(raw));
    raw[0] = '\0';
    memcpy(raw + 1, "tim", 3);
    raw[4] = '\0';
    static const size_t sizes[] = {8190, 8193, 9216};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(strlen(b64(raw, sizes[i])), (sizes[i] + 2) / 3 * 4);
        assert_int_equal(start(&e, SASL_PLAIN, raw, sizes[i]), SASL_OK);
        assert_string_equal(e.x.user, "tim");
    }
    /* user names: up to 256 bytes */
    memset(raw, 'u', sizeof(raw));
    raw[0] = '\0';
    raw[257] = '\0';
    raw[258] = 'p';
    assert_int_equal(start(&e, SASL_PLAIN, raw, 259), SASL_OK);
    assert_int_equal(strlen(e.x.user), 256);
    raw[257] = 'u';
    raw[258] = '\0';
    raw[259] = 'p';
    assert_int_equal(start(&e, SASL_PLAIN, raw, 260), SASL_BAD_SYNTAX);
    assert_int_equal(start(&e, SASL_LOGIN, raw + 1, 256), SASL_CHALLENGE);
    assert_int_equal(start(&e, SASL_LOGIN, raw + 1, 257), SASL_BAD_SYNTAX);
    char oauth[400];
    int n = snprintf(oauth, sizeof(oauth), "user=%.257s\1auth=Bearer t\1\1", raw + 1);
    assert_int_equal(start(&e, SASL_XOAUTH2, oauth, (size_t)n), SASL_BAD_SYNTAX);
    n = snprintf(oauth, sizeof(oauth), "user=%.256s\1auth=Bearer t\1\1", raw + 1);
    assert_int_equal(start(&e, SASL_XOAUTH2, oauth, (size_t)n), SASL_OK);
    char cram[400];
    snprintf(cram, sizeof(cram), "%.257s 00000000000000000000000000000000", raw + 1);
    assert_int_equal(start(&e, SASL_CRAM_MD5, NULL, 0), SASL_CHALLENGE);
    assert_int_equal(cram_step(&e, cram), SASL_BAD_SYNTAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mech_names),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_login),
        cmocka_unit_test(test_cram_md5),
        cmocka_unit_test(test_xoauth2),
        cmocka_unit_test(test_no_users_accepts_anything),
        cmocka_unit_test(test_malformed_base64),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_long_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
