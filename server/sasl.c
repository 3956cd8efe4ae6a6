/*
 * sasl.c - PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 exchanges for SMTP AUTH (RFC 4954).
 */
#include "sasl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "smtp_parse.h"

/* The longest response line we read (RFC 4954 section 4) decodes to 3 bytes per 4: every one fits. */
#define SASL_DECODED_MAX (SMTP_AUTH_LINE_MAX / 4 * 3)

/* The XOAUTH2 failure challenge Gmail sends before its 535 (Google's "OAuth 2.0 Mechanism" page). */
#define XOAUTH2_ERROR_JSON \
    "{\"status\":\"400\",\"schemes\":\"Bearer\",\"scope\":\"https://mail.google.com/\"}"

static const struct {
    const char *name;
    int plaintext;
} mechs[] = {
#define SASL_MECH_ROW(e, name, clear) {name, clear},
    FAULT_AUTH_MECH_LIST(SASL_MECH_ROW)
#undef SASL_MECH_ROW
};

const char *sasl_mech_name(sasl_mech m)
{
    return (unsigned)m < SASL_MECH_COUNT ? mechs[m].name : "?";
}

int sasl_mech_parse(const char *name, size_t len)
{
    for (int i = 0; i < SASL_MECH_COUNT; i++)
        if (strlen(mechs[i].name) == len && strncasecmp(name, mechs[i].name, len) == 0)
            return i;
    return -1;
}

int sasl_mech_is_plaintext(sasl_mech m)
{
    return mechs[m].plaintext;
}

/* -- users ---------------------------------------------------------------------------------------------- */

/* find_password - the password of user name, or NULL */
static const char *find_password(const sasl_users *u, const char *name, size_t len)
{
    for (size_t i = 0; i < u->n; i++)
        if (strlen(u->names[i]) == len && memcmp(u->names[i], name, len) == 0)
            return u->passwords[i];
    return NULL;
}

/* same_secret - constant-time comparison, so response times say nothing about the password */
static int same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* check_password - 1 when name/password is a configured user, or when no users are configured */
static int check_password(const sasl_context *ctx, const char *name, size_t nlen, const char *pw,
                          size_t pwlen)
{
    if (ctx->users == NULL || ctx->users->n == 0)
        return 1;
    const char *want = find_password(ctx->users, name, nlen);
    return want != NULL && same_secret(want, strlen(want), pw, pwlen);
}

static void set_user(sasl_exchange *x, const char *name, size_t len)
{
    if (len > SASL_NAME_MAX)
        len = SASL_NAME_MAX;
    memcpy(x->user, name, len);
    x->user[len] = '\0';
}

/* -- base64 -----------------------------------------------------------------------------------------------
 */

/*
 * decode - a client response: "=" or "" is empty (RFC 4954 section 4); otherwise strict base64 (length a
 * multiple of four, alphabet only; wolfCrypt's decoder would skip some bytes we want refused). Returns the
 * decoded length, or -1.
 */
static int decode(const char *in, size_t len, char *out, size_t outsz)
{
    if (len == 0 || (len == 1 && in[0] == '='))
        return 0;
    if (len % 4 != 0 || len / 4 * 3 > outsz)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                 c == '/' || (c == '=' && i >= len - 2 && (i == len - 1 || in[len - 1] == '='));
        if (!ok)
            return -1;
    }
    word32 n = (word32)outsz;
    if (Base64_Decode((const byte *)in, (word32)len, (byte *)out, &n) != 0)
        return -1;
    return (int)n;
}

/* encode - base64 of len bytes into out (NUL-terminated); -1 when it does not fit */
static int encode(const char *in, size_t len, char *out, size_t outsz)
{
    if (len == 0) {
        if (outsz == 0)
            return -1;
        out[0] = '\0';
        return 0;
    }
    word32 n = (word32)(outsz - 1);
    if (outsz < 5 || Base64_Encode_NoNl((const byte *)in, (word32)len, (byte *)out, &n) != 0)
        return -1;
    out[n] = '\0';
    return 0;
}

static sasl_result challenge(const char *text, char *out, size_t outsz)
{
    return encode(text, strlen(text), out, outsz) == 0 ? SASL_CHALLENGE : SASL_BAD_SYNTAX;
}

/* -- mechanisms -------------------------------------------------------------------------------------------
 */

/* plain - "[authzid] NUL authcid NUL passwd" (RFC 4616 section 2) */
static sasl_result plain(sasl_exchange *x, const char *d, size_t n, const sasl_context *ctx)
{
    const char *nul1 = memchr(d, '\0', n);
    const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - d)) : NULL;
    if (nul2 == NULL || memchr(nul2 + 1, '\0', n - (size_t)(nul2 + 1 - d)) != NULL)
        return SASL_BAD_SYNTAX;
    const char *user = nul1 + 1, *pw = nul2 + 1;
    size_t ulen = (size_t)(nul2 - user), pwlen = n - (size_t)(pw - d);
    if (ulen == 0 || ulen > SASL_NAME_MAX)
        return SASL_BAD_SYNTAX;
    set_user(x, user, ulen);
    return check_password(ctx, user, ulen, pw, pwlen) ? SASL_OK : SASL_BAD_CREDS;
}

/* cram_md5 - "user SP 32 lowercase hex digits" of HMAC-MD5(password, challenge) (RFC 2195) */
static sasl_result cram_md5(sasl_exchange *x, const char *d, size_t n, const sasl_context *ctx)
{
    const char *sp = NULL;
    for (size_t i = n; i > 0; i--)
        if (d[i - 1] == ' ') {
            sp = d + i - 1;
            break;
        }
    if (sp == NULL || sp == d || n - (size_t)(sp + 1 - d) != 32 || (size_t)(sp - d) > SASL_NAME_MAX)
        return SASL_BAD_SYNTAX;
    size_t ulen = (size_t)(sp - d);
    set_user(x, d, ulen);
    const char *hex = sp + 1;
    for (int i = 0; i < 32; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return SASL_BAD_SYNTAX;
    if (ctx->users == NULL || ctx->users->n == 0)
        return SASL_OK;
    const char *password = find_password(ctx->users, d, ulen);
    if (password == NULL)
        return SASL_BAD_CREDS;
    Hmac h;
    byte mac[WC_MD5_DIGEST_SIZE];
    int r = wc_HmacInit(&h, NULL, INVALID_DEVID);
    if (r == 0)
        r = wc_HmacSetKey(&h, WC_MD5, (const byte *)password, (word32)strlen(password));
    if (r == 0)
        r = wc_HmacUpdate(&h, (const byte *)x->challenge, (word32)strlen(x->challenge));
    if (r == 0)
        r = wc_HmacFinal(&h, mac);
    wc_HmacFree(&h);
    if (r != 0)
        return SASL_BAD_CREDS;
    char want[33];
    for (int i = 0; i < WC_MD5_DIGEST_SIZE; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    return same_secret(want, 32, hex, 32) ? SASL_OK : SASL_BAD_CREDS;
}

/* xoauth2 - "user=" USER ^A "auth=Bearer " TOKEN ^A ^A */
static sasl_result xoauth2(sasl_exchange *x, const char *d, size_t n, const sasl_context *ctx, char *out,
                           size_t outsz)
{
    static const char user_key[] = "user=", auth_key[] = "auth=Bearer ";
    const char *end = d + n;
    if (n < 2 || end[-1] != '\x01' || end[-2] != '\x01' || strncmp(d, user_key, sizeof(user_key) - 1) != 0)
        return SASL_BAD_SYNTAX;
    const char *user = d + sizeof(user_key) - 1;
    const char *sep = memchr(user, '\x01', (size_t)(end - user));
    if (sep == NULL || sep == user || (size_t)(sep - user) > SASL_NAME_MAX)
        return SASL_BAD_SYNTAX;
    const char *auth = sep + 1;
    if ((size_t)(end - auth) < sizeof(auth_key) - 1 + 2 || strncasecmp(auth, auth_key, 5) != 0 ||
        strncasecmp(auth + 5, "Bearer ", 7) != 0)
        return SASL_BAD_SYNTAX;
    const char *token = auth + sizeof(auth_key) - 1;
    size_t tlen = (size_t)(end - 2 - token);
    set_user(x, user, (size_t)(sep - user));
    if (check_password(ctx, user, (size_t)(sep - user), token, tlen))
        return SASL_OK;
    /* The provider convention: an error challenge first; the client answers with an empty line. */
    x->failed = 1;
    return challenge(XOAUTH2_ERROR_JSON, out, outsz);
}

/* respond - one decoded response for the mechanism at its current step */
static sasl_result respond(sasl_exchange *x, const char *d, size_t n, const sasl_context *ctx, char *out,
                           size_t outsz)
{
    switch (x->mech) {
    case SASL_PLAIN:
        return plain(x, d, n, ctx);
    case SASL_LOGIN:
        if (x->step == 0) {
            if (n == 0 || n > SASL_NAME_MAX || memchr(d, '\0', n) != NULL)
                return SASL_BAD_SYNTAX;
            set_user(x, d, n);
            x->step = 1;
            return challenge("Password:", out, outsz);
        }
        return check_password(ctx, x->user, strlen(x->user), d, n) ? SASL_OK : SASL_BAD_CREDS;
    case SASL_CRAM_MD5:
        return cram_md5(x, d, n, ctx);
    case SASL_XOAUTH2:
        return xoauth2(x, d, n, ctx, out, outsz);
    default:
        return SASL_BAD_SYNTAX;
    }
}

/* take - decode a response line and pass it on */
static sasl_result take(sasl_exchange *x, const char *line, size_t len, const sasl_context *ctx, char *out,
                        size_t outsz)
{
    char *d = malloc(SASL_DECODED_MAX);
    if (d == NULL)
        return SASL_BAD_SYNTAX;
    int n = decode(line, len, d, SASL_DECODED_MAX);
    sasl_result r = n < 0 ? SASL_BAD_BASE64 : respond(x, d, (size_t)n, ctx, out, outsz);
    free(d);
    return r;
}

sasl_result sasl_start(sasl_exchange *x, sasl_mech m, const char *initial, size_t len,
                       const sasl_context *ctx, char *out, size_t outsz)
{
    memset(x, 0, sizeof(*x));
    x->mech = m;
    if (initial != NULL && len == 1 && initial[0] == '*')
        return SASL_CANCELLED;
    if (m == SASL_CRAM_MD5) {
        if (initial != NULL) /* RFC 2195: the server speaks first */
            return SASL_BAD_SYNTAX;
        snprintf(x->challenge, sizeof(x->challenge), "<%llu.%lld@%s>", ctx->nonce, (long long)time(NULL),
                 ctx->hostname);
        return challenge(x->challenge, out, outsz);
    }
    if (initial == NULL) {
        if (m == SASL_LOGIN)
            return challenge("Username:", out, outsz);
        out[0] = '\0'; /* PLAIN, XOAUTH2: an empty challenge asks for the response */
        return SASL_CHALLENGE;
    }
    return take(x, initial, len, ctx, out, outsz);
}

sasl_result sasl_step(sasl_exchange *x, const char *line, size_t len, const sasl_context *ctx, char *out,
                      size_t outsz)
{
    if (len == 1 && line[0] == '*')
        return SASL_CANCELLED;
    if (x->failed) /* XOAUTH2 after its error challenge: whatever the client says, it failed */
        return SASL_BAD_CREDS;
    return take(x, line, len, ctx, out, outsz);
}
