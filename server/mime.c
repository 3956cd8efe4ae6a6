/*
 * mime.c - header fields and leaf parts of a message (RFC 5322, RFC 2045/2046), for showing it: lenient
 * (what a client sent is shown as well as it can be), bounded (MIME_DEPTH_MAX, MIME_PARTS_MAX), and never
 * reading outside the message. Base64 through wolfCrypt; quoted-printable here (no library of ours has it).
 */
#define _GNU_SOURCE /* memmem, strncasecmp */

#include "mime.h"
#include "utf8.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/coding.h>

#define MIME_FIELD_MAX 998 /* a header field's value as read here (RFC 5322's line length) */

/* line_end - the length of the line at p (without its LF) and where the next one starts */
static size_t line_end(const char *p, const char *end, const char **next)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    *next = lf ? lf + 1 : end;
    return (size_t)((lf ? lf : end) - p);
}

size_t mime_body(const char *msg, size_t len)
{
    const char *p = msg, *end = msg + len, *next;
    while (p < end) {
        size_t n = line_end(p, end, &next);
        if (n == 0 || (n == 1 && p[0] == '\r'))
            return (size_t)(next - msg);
        p = next;
    }
    return len;
}

int mime_header(const char *msg, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name), o = 0, body = mime_body(msg, len);
    const char *p = msg, *end = msg + body, *next;
    int found = 0;
    out[0] = '\0';
    while (p < end) {
        size_t n = line_end(p, end, &next);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (found && n > 0 && (p[0] == ' ' || p[0] == '\t')) {
            for (size_t i = 0; i < n && o + 1 < outsz; i++)
                out[o++] = p[i];
        } else if (found) {
            break;
        } else if (n > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            found = 1;
            size_t i = nlen + 1;
            while (i < n && (p[i] == ' ' || p[i] == '\t'))
                i++;
            for (; i < n && o + 1 < outsz; i++)
                out[o++] = p[i];
        }
        p = next;
    }
    while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
        o--;
    out[o] = '\0';
    return found ? 0 : -1;
}

/* param_value - where the parameter key of a Content-Type or Content-Disposition value starts (inside its
 * quotes, if any) and its length in *n; NULL when there is none */
static const char *param_value(const char *value, const char *key, size_t *n)
{
    size_t klen = strlen(key);
    for (const char *p = strchr(value, ';'); p != NULL; p = strchr(p + 1, ';')) {
        const char *k = p + 1;
        while (*k == ' ' || *k == '\t')
            k++;
        if (strncasecmp(k, key, klen) != 0 || k[klen] != '=')
            continue;
        const char *v = k + klen + 1;
        if (*v == '"') {
            v++;
            *n = strcspn(v, "\"");
        } else {
            *n = strcspn(v, "; \t");
        }
        return v;
    }
    return NULL;
}

/* param - the parameter key of a Content-Type or Content-Disposition value (quoted or not) into out */
static void param(const char *value, const char *key, char *out, size_t outsz)
{
    size_t n;
    const char *v = param_value(value, key, &n);
    out[0] = '\0';
    if (v != NULL)
        snprintf(out, outsz, "%.*s", (int)(n < outsz ? n : outsz - 1), v);
}

/* media_type - the type of a Content-Type value, lower case, without parameters */
static void media_type(const char *value, char *out, size_t outsz)
{
    size_t n = strcspn(value, "; \t"), o = 0;
    for (size_t i = 0; i < n && o + 1 < outsz; i++)
        out[o++] = value[i] >= 'A' && value[i] <= 'Z' ? (char)(value[i] - 'A' + 'a') : value[i];
    out[o] = '\0';
}

int mime_hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* hex_byte - the byte p[1..2] writes in hex after an escape character (=XX, %XX), or -1; left: bytes at p */
static int hex_byte(const char *p, size_t left)
{
    if (left < 3 || mime_hex_value(p[1]) < 0 || mime_hex_value(p[2]) < 0)
        return -1;
    return mime_hex_value(p[1]) * 16 + mime_hex_value(p[2]);
}

/* decode_qp - quoted-printable into out (at least len bytes); its length */
static size_t decode_qp(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '=') {
            out[o++] = in[i];
            continue;
        }
        if (i + 1 < len && in[i + 1] == '\n') { /* a soft line break */
            i += 1;
        } else if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n') {
            i += 2;
        } else if (hex_byte(in + i, len - i) >= 0) {
            out[o++] = (char)hex_byte(in + i, len - i);
            i += 2;
        } else {
            out[o++] = '='; /* not an escape: kept as it is */
        }
    }
    return o;
}

/* decode_base64 - base64 (line breaks and other stray bytes skipped) into out; its length, 0 when broken */
static size_t decode_base64(const char *in, size_t len, char *out)
{
    char *clean = malloc(len + 4);
    if (clean == NULL)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
            ch == '/' || ch == '=')
            clean[n++] = ch;
    }
    while (n % 4 != 0)
        clean[n++] = '='; /* a truncated last group */
    word32 outlen = (word32)(len + 3);
    int r = n == 0 ? -1 : Base64_Decode((const byte *)clean, (word32)n, (byte *)out, &outlen);
    free(clean);
    return r == 0 ? outlen : 0;
}

/* -- charsets (iconv) and encoded words (RFC 2047) ------------------------------------------------------ */

#define MIME_CHARSET_MAX 63 /* a charset name as read here; longer ones are not known */

static const char replacement_char[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* utf8_charset - a charset whose bytes are shown as they are (UTF-8 already, or a subset of it) */
static int utf8_charset(const char *name)
{
    return name[0] == '\0' || strcasecmp(name, "utf-8") == 0 || strcasecmp(name, "utf8") == 0 ||
           strcasecmp(name, "us-ascii") == 0;
}

/*
 * charset_open - an iconv descriptor from the charset name (len bytes, an RFC 2231 "*language" suffix
 * ignored) to UTF-8, or (iconv_t)-1. Only a token's characters are handed to iconv_open: no "//" options.
 */
static iconv_t charset_open(const char *name, size_t len)
{
    char cs[MIME_CHARSET_MAX + 1];
    size_t n = 0;
    for (; n < len && name[n] != '*'; n++) {
        char ch = name[n];
        if (n == MIME_CHARSET_MAX || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                                       (ch >= '0' && ch <= '9') || strchr("-_.:+", ch) != NULL))
            return (iconv_t)-1;
        cs[n] = ch;
    }
    cs[n] = '\0';
    return n == 0 ? (iconv_t)-1 : iconv_open("UTF-8", cs);
}

/*
 * nul_to_replacement - each U+0000 of out[from..*o) as U+FFFD (callers show C strings: a NUL would hide what
 * follows it), below cap; 0, or -1 when what did not fit was cut (whole characters kept)
 */
static int nul_to_replacement(char *out, size_t from, size_t *o, size_t cap)
{
    const size_t grow = sizeof(replacement_char) - 2; /* bytes a NUL's replacement adds */
    size_t keep = from, size = from;
    while (keep < *o && size + 1 + (out[keep] == '\0' ? grow : 0) <= cap)
        size += 1 + (out[keep++] == '\0' ? grow : 0);
    int cut = keep < *o;
    for (; keep > from && ((unsigned char)out[keep] & 0xC0) == 0x80 && cut; keep--)
        size--; /* not inside a sequence: out[keep] starts the one cut off */
    for (size_t i = keep, dst = size; i-- > from;) { /* backwards: the replacements grow in place */
        if (out[i] != '\0') {
            out[--dst] = out[i];
        } else {
            dst -= sizeof(replacement_char) - 1;
            memcpy(out + dst, replacement_char, sizeof(replacement_char) - 1);
        }
    }
    *o = size;
    return cut ? -1 : 0;
}

/* Input handed to iconv at once: a sanitizer checks all of it at each call, and a call follows each bad byte
 */
#define MIME_ICONV_WINDOW 4096

/*
 * convert - in (len bytes) through cd appended to out at *o, below cap: what cd cannot convert, and U+0000,
 * become U+FFFD, one per byte skipped; 0, or -1 when out is full (what fit, whole characters, is kept).
 * Linear in len: iconv reads it MIME_ICONV_WINDOW bytes at a time.
 */
static int convert(iconv_t cd, const char *in, size_t len, char *out, size_t *o, size_t cap)
{
    size_t from = *o;
    char *ip = (char *)in, *op = out + *o;
    size_t ileft = len, oleft = cap - *o;
    int full = 0;
    (void)iconv(cd, NULL, NULL, NULL, NULL); /* a fresh shift state */
    while (!full) {
        size_t window = ileft < MIME_ICONV_WINDOW ? ileft : MIME_ICONV_WINDOW, wleft = window;
        size_t r = iconv(cd, &ip, &wleft, &op, &oleft);
        ileft -= window - wleft;
        if (r != (size_t)-1 && ileft == 0) {
            full = iconv(cd, NULL, NULL, &op, &oleft) == (size_t)-1;
            break;
        }
        if (r != (size_t)-1 || (errno == EINVAL && wleft < ileft && wleft < window))
            continue; /* the window is read, or cuts a sequence the next one holds (it starts there) */
        if (errno == E2BIG || oleft < sizeof(replacement_char) - 1) {
            full = 1;
        } else { /* EILSEQ, or EINVAL: a sequence cut at the end */
            memcpy(op, replacement_char, sizeof(replacement_char) - 1);
            op += sizeof(replacement_char) - 1;
            oleft -= sizeof(replacement_char) - 1;
            ip++;
            ileft--;
            /* No reset: iconv keeps the state from before the bad byte, and what follows it is read in that
             * state (ISO-2022-JP's JIS mode, UTF-7's base64), not as ASCII. */
        }
    }
    *o = (size_t)(op - out);
    return nul_to_replacement(out, from, o, cap) != 0 || full ? -1 : 0;
}

/* decode_q - RFC 2047's Q encoding ('_' a space, =XX a byte) into out (at least len bytes); its length */
static size_t decode_q(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '_') {
            out[o++] = ' ';
        } else if (in[i] == '=' && hex_byte(in + i, len - i) >= 0) {
            out[o++] = (char)hex_byte(in + i, len - i);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}

/* word_char - a byte an encoded word's charset or text may hold (not '?', a blank or a control) */
static int word_char(char ch)
{
    return ch != '?' && (unsigned char)ch > ' ' && ch != 0x7F;
}

typedef struct word_decoder {
    char name[MIME_CHARSET_MAX + 1]; /* the charset cd converts from: words mostly share one */
    iconv_t cd;
    char *bytes; /* a word's decoded bytes (as long as the value) */
    int full;    /* out is full */
} word_decoder;

/*
 * decode_word - the encoded word at s (up to end) appended to out at *o; how many bytes of s it took, 0 when
 * s holds none (out unchanged). Scans s only up to its third '?' (or the first blank).
 */
static size_t decode_word(word_decoder *d, const char *s, const char *end, char *out, size_t *o, size_t cap)
{
    if (end - s < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    const char *cs = s + 2, *p = cs;
    while (p < end && word_char(*p) && p - cs <= MIME_CHARSET_MAX)
        p++;
    size_t cslen = (size_t)(p - cs);
    if (cslen == 0 || cslen > MIME_CHARSET_MAX || end - p < 5 || p[0] != '?' || p[2] != '?')
        return 0;
    char enc = p[1];
    const char *text = p + 3, *t = text;
    while (t < end && word_char(*t))
        t++;
    if (end - t < 2 || t[0] != '?' || t[1] != '=' || (enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q'))
        return 0;
    if (strncasecmp(d->name, cs, cslen) != 0 || d->name[cslen] != '\0') {
        if (d->cd != (iconv_t)-1)
            iconv_close(d->cd);
        d->cd = charset_open(cs, cslen);
        snprintf(d->name, sizeof(d->name), "%.*s", (int)cslen, cs);
    }
    if (d->cd == (iconv_t)-1)
        return 0; /* a charset iconv does not know: the word is shown as it is */
    size_t tlen = (size_t)(t - text), n;
    if (enc == 'B' || enc == 'b') {
        n = decode_base64(text, tlen, d->bytes);
        if (n == 0 && tlen > 0)
            return 0; /* broken base64: shown as it is */
    } else {
        n = decode_q(text, tlen, d->bytes);
    }
    d->full = convert(d->cd, d->bytes, n, out, o, cap) != 0;
    return (size_t)(t + 2 - s);
}

size_t mime_decode_words(const char *value, char *out, size_t outsz)
{
    size_t len = strlen(value), o = 0, cap = outsz > 0 ? outsz - 1 : 0;
    word_decoder d = {.name = "", .cd = (iconv_t)-1, .bytes = malloc(len + 4), .full = 0};
    const char *p = value, *end = value + len;
    /* After an encoded word: where its output ended, so that only blanks up to the next word can be undone.
     */
    size_t after_word = 0;
    int blanks_only = 0;
    while (p < end && !d.full) {
        size_t before = o, took = d.bytes ? decode_word(&d, p, end, out, &o, cap) : 0;
        if (took > 0) {
            if (blanks_only) { /* RFC 2047 6.2: the blanks between two encoded words are not shown */
                memmove(out + after_word, out + before, o - before);
                o = after_word + (o - before);
            }
            p += took;
            after_word = o;
            blanks_only = 1;
            continue;
        }
        blanks_only = blanks_only && (*p == ' ' || *p == '\t');
        /* Other bytes as they are, a UTF-8 sequence whole or not at all (the buffer may cut it). */
        size_t n = utf8_sequence_len((const unsigned char *)p, (size_t)(end - p));
        n = n == 0 ? 1 : n;
        if (o + n > cap)
            break;
        memcpy(out + o, p, n);
        o += n;
        p += n;
    }
    if (outsz > 0)
        out[o] = '\0';
    if (d.cd != (iconv_t)-1)
        iconv_close(d.cd);
    free(d.bytes);
    return o;
}

int mime_part_to_utf8(mime_part *p)
{
    iconv_t cd = utf8_charset(p->charset) ? (iconv_t)-1 : charset_open(p->charset, strlen(p->charset));
    if (cd == (iconv_t)-1) { /* UTF-8 or unknown: shown as sent, bytes that are not UTF-8 as U+FFFD */
        if (memchr(p->data, '\0', p->len) == NULL)
            return 0;
        cd = iconv_open("UTF-8", "UTF-8"); /* but a NUL would cut the text: its U+FFFD */
        if (cd == (iconv_t)-1)
            return 0;
    }
    size_t cap = p->len * MIME_UTF8_GROWTH + 4, o = 0;
    char *out = malloc(cap + 1);
    if (out == NULL) {
        iconv_close(cd);
        return -1;
    }
    (void)convert(cd, p->data, p->len, out, &o, cap);
    iconv_close(cd);
    out[o] = '\0';
    free(p->data);
    p->data = out;
    p->len = o;
    return 0;
}

#define MIME_PARAM_SECTIONS_MAX 64 /* RFC 2231 continuations of one parameter read (key*0 to key*63) */

/* append_section - an RFC 2231 section's value after bytes[*nb] (bounded by cap), %XX decoded if extended */
static void append_section(char *bytes, size_t *nb, size_t cap, const char *v, size_t n, int extended)
{
    for (size_t i = 0; i < n && *nb < cap; i++) {
        if (extended && v[i] == '%' && hex_byte(v + i, n - i) >= 0) {
            bytes[(*nb)++] = (char)hex_byte(v + i, n - i);
            i += 2;
        } else {
            bytes[(*nb)++] = v[i];
        }
    }
}

/*
 * param_2231 - the RFC 2231 parameter key* of a field's value (key*=charset'language'%XX..., or its
 * sections key*0*=, key*1=, ... in order) converted to UTF-8 into out; its length, 0 when there is none.
 * An unknown charset is read as UTF-8 (bytes that are not become U+FFFD).
 */
static size_t param_2231(const char *value, const char *key, char *out, size_t outsz)
{
    char name[64], bytes[MIME_FIELD_MAX + 1];
    size_t nb = 0, n, o = 0;
    const char *v;
    int extended = 0;
    out[0] = '\0';
    snprintf(name, sizeof(name), "%s*", key);
    if ((v = param_value(value, name, &n)) != NULL) {
        extended = 1;
        append_section(bytes, &nb, sizeof(bytes), v, n, 1);
    }
    for (int i = 0; v == NULL && i < MIME_PARAM_SECTIONS_MAX; i++) {
        snprintf(name, sizeof(name), "%s*%d*", key, i);
        const char *section = param_value(value, name, &n);
        int ext = section != NULL;
        if (!ext) {
            snprintf(name, sizeof(name), "%s*%d", key, i);
            section = param_value(value, name, &n);
        }
        if (section == NULL)
            break;
        extended = i == 0 ? ext : extended;
        append_section(bytes, &nb, sizeof(bytes), section, n, ext);
    }
    if (nb == 0 || outsz == 0)
        return 0;
    /* charset'language' before the first extended section's value */
    const char *q1 = extended ? memchr(bytes, '\'', nb) : NULL;
    const char *q2 = q1 ? memchr(q1 + 1, '\'', nb - (size_t)(q1 + 1 - bytes)) : NULL;
    const char *data = q2 ? q2 + 1 : bytes;
    iconv_t cd = q2 ? charset_open(bytes, (size_t)(q1 - bytes)) : (iconv_t)-1;
    if (cd == (iconv_t)-1)
        cd = iconv_open("UTF-8", "UTF-8");
    if (cd == (iconv_t)-1)
        return 0;
    (void)convert(cd, data, nb - (size_t)(data - bytes), out, &o, outsz - 1);
    iconv_close(cd);
    out[o] = '\0';
    return o;
}

/* part_filename - a part's file name: Content-Disposition's filename, else Content-Type's name, each as RFC
 * 2231 says (key*) or as most clients send it (key, its encoded words decoded) */
static void part_filename(const char *disposition, const char *ctype, char *out, size_t outsz)
{
    const char *fields[] = {disposition, ctype}, *keys[] = {"filename", "name"};
    char plain[MIME_FIELD_MAX + 1];
    for (size_t i = 0; i < 2; i++) {
        if (param_2231(fields[i], keys[i], out, outsz) > 0)
            return;
        param(fields[i], keys[i], plain, sizeof(plain));
        if (plain[0] != '\0') {
            (void)mime_decode_words(plain, out, outsz);
            return;
        }
    }
}

/* add_part - a leaf part (its header section is head, its body body) */
static int add_part(mime_message *m, const char *head, size_t hlen, const char *body, size_t blen,
                    const char *type)
{
    if (m->nparts >= MIME_PARTS_MAX)
        return 0;
    mime_part *p = &m->parts[m->nparts];
    memset(p, 0, sizeof(*p));
    char cte[64], disposition[MIME_FIELD_MAX + 1], ctype[MIME_FIELD_MAX + 1];
    snprintf(p->type, sizeof(p->type), "%s", type);
    (void)mime_header(head, hlen, "Content-Transfer-Encoding", cte, sizeof(cte));
    (void)mime_header(head, hlen, "Content-Disposition", disposition, sizeof(disposition));
    (void)mime_header(head, hlen, "Content-Type", ctype, sizeof(ctype));
    (void)mime_header(head, hlen, "Content-ID", p->content_id, sizeof(p->content_id));
    part_filename(disposition, ctype, p->filename, sizeof(p->filename));
    param(ctype, "charset", p->charset, sizeof(p->charset));
    p->attachment = strncasecmp(disposition, "attachment", 10) == 0;
    p->data = malloc(blen + 1);
    if (p->data == NULL)
        return -1;
    if (strcasecmp(cte, "base64") == 0)
        p->len = decode_base64(body, blen, p->data);
    else if (strcasecmp(cte, "quoted-printable") == 0)
        p->len = decode_qp(body, blen, p->data);
    else
        memcpy(p->data, body, p->len = blen);
    p->data[p->len] = '\0';
    m->nparts++;
    return 0;
}

/* delimiter_end - what follows "--boundary" on its line makes it a delimiter: nothing, or "--", then blanks
 */
static int delimiter_end(const char *p, size_t n)
{
    size_t i = n >= 2 && p[0] == '-' && p[1] == '-' ? 2 : 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
        i++;
    return i == n;
}

/* walk - the entity msg (header section and body): its leaf parts, through multiparts up to depth */
static int walk(mime_message *m, const char *msg, size_t len, int depth, const char *default_type)
{
    size_t body = mime_body(msg, len);
    char ctype[MIME_FIELD_MAX + 1], type[128], boundary[80];
    if (mime_header(msg, body, "Content-Type", ctype, sizeof(ctype)) != 0)
        snprintf(ctype, sizeof(ctype), "%s", default_type);
    media_type(ctype, type, sizeof(type));
    param(ctype, "boundary", boundary, sizeof(boundary));
    if (strncmp(type, "multipart/", 10) != 0 || boundary[0] == '\0' || depth >= MIME_DEPTH_MAX)
        return add_part(m, msg, body, msg + body, len - body, type);
    /* Parts lie between lines that start with "--boundary"; the one that adds "--" ends them. */
    const char *child = strcmp(type, "multipart/digest") == 0 ? "message/rfc822" : "text/plain";
    char delim[84];
    int dlen = snprintf(delim, sizeof(delim), "--%s", boundary);
    const char *p = msg + body, *end = msg + len, *next, *start = NULL;
    while (p < end) {
        size_t n = line_end(p, end, &next);
        if (n >= (size_t)dlen && memcmp(p, delim, (size_t)dlen) == 0 &&
            delimiter_end(p + dlen, n - (size_t)dlen)) {
            if (start != NULL) {
                size_t plen = (size_t)(p - start);
                /* the line break before the delimiter belongs to it */
                if (plen > 0 && start[plen - 1] == '\n')
                    plen--;
                if (plen > 0 && start[plen - 1] == '\r')
                    plen--;
                if (walk(m, start, plen, depth + 1, child) != 0)
                    return -1;
            }
            if (n >= (size_t)dlen + 2 && p[dlen] == '-' && p[dlen + 1] == '-')
                return 0;
            start = next;
        }
        p = next;
    }
    /* No closing delimiter (a message cut short): what came after the last one is a part too. */
    return start != NULL && start < end ? walk(m, start, (size_t)(end - start), depth + 1, child) : 0;
}

int mime_parse(const char *msg, size_t len, mime_message *m)
{
    m->nparts = 0;
    return walk(m, msg, len, 0, "text/plain");
}

void mime_free(mime_message *m)
{
    for (size_t i = 0; i < m->nparts; i++)
        free(m->parts[i].data);
    m->nparts = 0;
}

/* The zone names RFC 5322 4.3 keeps for old mail, with their offsets in minutes */
static const struct {
    const char *name;
    int minutes;
} obsolete_zones[] = {{"UT", 0},        {"GMT", 0},       {"Z", 0},         {"EST", -5 * 60},
                      {"EDT", -4 * 60}, {"CST", -6 * 60}, {"CDT", -5 * 60}, {"MST", -7 * 60},
                      {"MDT", -6 * 60}, {"PST", -8 * 60}, {"PDT", -7 * 60}};

/* date_zone - the zone at p ("+0100", "GMT"...) in minutes east of UTC; p past it; -1 when there is none */
static int date_zone(const char **p, int *minutes)
{
    const char *z = *p;
    if ((z[0] == '+' || z[0] == '-') && strspn(z + 1, "0123456789") == 4) {
        int hh = (z[1] - '0') * 10 + (z[2] - '0'), mm = (z[3] - '0') * 10 + (z[4] - '0');
        if (hh > 23 || mm > 59) /* RFC 3339's time-numoffset cannot say more */
            return -1;
        *minutes = (z[0] == '-' ? -1 : 1) * (hh * 60 + mm);
        *p = z + 5;
        return 0;
    }
    size_t len = strspn(z, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    for (size_t i = 0; i < sizeof(obsolete_zones) / sizeof(obsolete_zones[0]); i++) {
        if (strlen(obsolete_zones[i].name) == len && strncasecmp(z, obsolete_zones[i].name, len) == 0) {
            *minutes = obsolete_zones[i].minutes;
            *p = z + len;
            return 0;
        }
    }
    return -1;
}

/* year_digits - the digits of the year of a date strptime read ("[day-name ,] day month year ...") */
static size_t year_digits(const char *value)
{
    static const char blanks[] = " \t", letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const char *p = value + strspn(value, blanks);
    if (strspn(p, letters) > 0) { /* the day of the week and its comma */
        p += strspn(p, letters);
        p += strspn(p, blanks);
        p += *p == ',';
        p += strspn(p, blanks);
    }
    p += strspn(p, "0123456789");
    p += strspn(p, blanks);
    p += strspn(p, letters);
    p += strspn(p, blanks);
    return strspn(p, "0123456789");
}

int mime_date(const char *value, char *out, size_t outsz)
{
    /* With and without the day of the week and the seconds; strptime takes blanks for any run of them. */
    static const char *const layouts[] = {"%a , %d %b %Y %H:%M:%S", "%a , %d %b %Y %H:%M",
                                          "%d %b %Y %H:%M:%S", "%d %b %Y %H:%M"};
    if (outsz > 0)
        out[0] = '\0';
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *p = strptime(value, layouts[i], &tm);
        if (p == NULL || (*p != ' ' && *p != '\t'))
            continue; /* a zone must follow, after a blank (and "10:00:00" is not "10:00" and ":00") */
        p += strspn(p, " \t");
        int minutes;
        if (date_zone(&p, &minutes) != 0)
            return -1;
        p += strspn(p, " \t");
        if (*p == '(') /* a comment such as "(UTC)" */
            p += strcspn(p, ")") + (strchr(p, ')') != NULL);
        if (p[strspn(p, " \t")] != '\0')
            return -1;
        /* RFC 5322 4.3: a two-digit year is 2000 more below 50, else 1900 more, and so is a three-digit one;
         * four digits are the year as it is ("0070" too) */
        size_t digits = year_digits(value);
        int year = tm.tm_year + 1900;
        if (digits < 2)
            return -1;
        if (digits < 4)
            year += digits == 2 && year < 50 ? 2000 : 1900;
        struct tm check = tm;
        check.tm_year = year - 1900;
        struct tm day = check;
        day.tm_sec = 0;     /* a leap second (60) is a second of its own day */
        (void)timegm(&day); /* normalises an impossible date (31 Feb): then it is no date */
        /* strptime takes seconds up to 61; RFC 3339 up to a leap second (60) */
        if (year < 0 || year > 9999 || tm.tm_sec > 60 || day.tm_mday != check.tm_mday ||
            day.tm_mon != check.tm_mon)
            return -1;
        char zone[16] = "Z"; /* "+hh:mm" (hh at most 99) */
        if (minutes != 0)
            snprintf(zone, sizeof(zone), "%c%02d:%02d", minutes < 0 ? '-' : '+', abs(minutes) / 60,
                     abs(minutes) % 60);
        int n = snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d%s", year, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
        return n > 0 && (size_t)n < outsz ? 0 : -1;
    }
    return -1;
}
