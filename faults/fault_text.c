/*
 * fault_text.c - the text utilities of the fault engine, used by the compiler and by the session at run
 * time: numeric addresses, SMTP reply formatting, placeholders ("{rcpt}") and their expansion, and the
 * folding of over-long reply lines.
 */
#include "fault_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sf_assert.h"

#define COUNT(a)      (sizeof(a) / sizeof((a)[0]))
#define LINE_TEXT_MAX (FAULT_REPLY_LINE_MAX - 6) /* a reply line's text: code, separator and CRLF aside */

int fault_parse_addr(const char *text, fault_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        out->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->bytes) == 1) {
        out->family = 6;
        return 0;
    }
    return -1;
}

void fault_addr_text(const fault_addr *a, char *out, size_t outsz)
{
    if (inet_ntop(a->family == 6 ? AF_INET6 : AF_INET, a->bytes, out, (socklen_t)outsz) == NULL)
        snprintf(out, outsz, "?");
}

int fault_format_reply(const char *const *lines, size_t n, char *out, size_t outsz, int *code, char *err,
                       size_t errsz)
{
    if (n == 0) {
        snprintf(err, errsz, "a reply needs at least one line");
        return -1;
    }
    const char *first = lines[0];
    if (!(first[0] >= '2' && first[0] <= '5' && isdigit((unsigned char)first[1]) &&
          isdigit((unsigned char)first[2]) && (first[3] == '\0' || first[3] == ' ' || first[3] == '-'))) {
        snprintf(err, errsz,
                 "a reply starts with a code from 200 to 599, then a space (\"550 5.1.1 User "
                 "unknown\"), got \"%.40s\"",
                 first);
        return -1;
    }
    *code = (first[0] - '0') * 100 + (first[1] - '0') * 10 + (first[2] - '0');
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *text = lines[i];
        int coded = isdigit((unsigned char)text[0]) && isdigit((unsigned char)text[1]) &&
                    isdigit((unsigned char)text[2]) && (text[3] == '\0' || text[3] == ' ' || text[3] == '-');
        if (coded && strncmp(text, first, 3) != 0) {
            snprintf(err, errsz,
                     "line %zu of the reply has the code %.3s, line 1 has %.3s: a reply has one code", i + 1,
                     text, first);
            return -1;
        }
        if (coded)
            text += text[3] ? 4 : 3; /* the line repeats the code */
        size_t len = strlen(text);
        while (len > 0 && text[len - 1] == '\r')
            len--;
        for (size_t j = 0; j < len; j++)
            if ((unsigned char)text[j] < 0x20 && text[j] != '\t') {
                snprintf(err, errsz, "line %zu of the reply holds a control character", i + 1);
                return -1;
            }
        if (len > LINE_TEXT_MAX) {
            snprintf(err, errsz, "line %zu of the reply is over %d characters", i + 1, LINE_TEXT_MAX);
            return -1;
        }
        if (o + len + 6 >= outsz) {
            snprintf(err, errsz, "the reply is over %zu bytes", outsz);
            return -1;
        }
        memcpy(out + o, first, 3);
        o += 3;
        if (len > 0 || i + 1 < n)
            out[o++] = i + 1 < n ? '-' : ' ';
        memcpy(out + o, text, len);
        o += len;
        out[o++] = '\r';
        out[o++] = '\n';
    }
    out[o] = '\0';
    return (int)o;
}

static const char *const placeholder_names[] = {
#define PLACEHOLDER_NAME(name, what) #name,
    FAULT_PLACEHOLDER_LIST(PLACEHOLDER_NAME)
#undef PLACEHOLDER_NAME
};

/* placeholder_at - the placeholder "{name}" at s (its index and length), or -1 */
static int placeholder_at(const char *s, size_t avail, size_t *len)
{
    for (size_t i = 0; i < COUNT(placeholder_names); i++) {
        size_t n = strlen(placeholder_names[i]);
        if (avail >= n + 2 && s[0] == '{' && strncmp(s + 1, placeholder_names[i], n) == 0 &&
            s[n + 1] == '}') {
            *len = n + 2;
            return (int)i;
        }
    }
    return -1;
}

const char *fault_check_placeholders(const char *text)
{
    size_t len = strlen(text), plen;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '{')
            continue;
        if (i + 1 < len && text[i + 1] == '{') {
            i++;
            continue;
        }
        if (placeholder_at(text + i, len - i, &plen) < 0)
            return "an unknown placeholder: the text may hold {client}, {sender}, {rcpt}, {helo}, {user}, "
                   "{hostname} and {listener} (write {{ and }} for literal braces)";
        i += plen - 1;
    }
    return NULL;
}

/* put - one byte of output at *o when it fits (the NUL included); *o counts every byte either way */
static void put(char *out, size_t outsz, size_t *o, char ch)
{
    if (*o + 1 < outsz)
        out[*o] = ch;
    (*o)++;
}

/* terminate - the NUL after what fit */
static size_t terminate(char *out, size_t outsz, size_t o)
{
    if (outsz > 0)
        out[o < outsz ? o : outsz - 1] = '\0';
    return o;
}

size_t fault_expand(const char *text, size_t len, const fault_vars *vars, char *out, size_t outsz)
{
    size_t o = 0, plen;
    for (size_t i = 0; i < len; i++) {
        int p;
        if ((text[i] == '{' || text[i] == '}') && i + 1 < len && text[i + 1] == text[i]) {
            put(out, outsz, &o, text[i]); /* "{{" and "}}" are literal braces */
            i++;
        } else if (text[i] == '{' && (p = placeholder_at(text + i, len - i, &plen)) >= 0) {
            for (const char *v = vars->v[p] ? vars->v[p] : ""; *v; v++)
                if ((unsigned char)*v >= 0x20) /* a value never breaks the reply's lines */
                    put(out, outsz, &o, *v);
            i += plen - 1;
        } else {
            put(out, outsz, &o, text[i]);
        }
    }
    return terminate(out, outsz, o);
}

/* enhanced_code_len - the length of "X.Y.Z " at the start of a reply line's text, or 0 (RFC 3463) */
static size_t enhanced_code_len(const char *t, size_t len)
{
    size_t i = 0;
    if (len < 6 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (i < len && digits < 4 && isdigit((unsigned char)t[i]))
            i++, digits++;
        if (digits == 0 || digits > 3 || i >= len || t[i] != (part == 0 ? '.' : ' '))
            return 0;
        i++;
    }
    return i;
}

size_t fault_fold_reply(const char *in, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    for (const char *p = in, *end = in + len; p < end;) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
        const char *next = eol ? eol + 2 : end;
        if (n + 2 <= FAULT_REPLY_LINE_MAX || n < 4) {
            for (size_t i = 0; i < n; i++)
                put(out, outsz, &o, p[i]);
            put(out, outsz, &o, '\r');
            put(out, outsz, &o, '\n');
            p = next;
            continue;
        }
        /* CODE SEP [X.Y.Z ]text: each piece repeats the code and the enhanced code (RFC 2034 section 4). */
        size_t esc = enhanced_code_len(p + 4, n - 4);
        const char *body = p + 4 + esc;
        size_t left = n - 4 - esc, room = FAULT_REPLY_LINE_MAX - 2 - 4 - esc;
        do {
            size_t take = left < room ? left : room;
            while (take < left && take > 0 && ((unsigned char)body[take] & 0xC0) == 0x80)
                take--; /* never inside a UTF-8 sequence */
            if (take == 0)
                take = room;
            for (size_t i = 0; i < 3; i++)
                put(out, outsz, &o, p[i]);
            put(out, outsz, &o, take == left ? p[3] : '-');
            for (size_t i = 0; i < esc; i++)
                put(out, outsz, &o, p[4 + i]);
            for (size_t i = 0; i < take; i++)
                put(out, outsz, &o, body[i]);
            put(out, outsz, &o, '\r');
            put(out, outsz, &o, '\n');
            body += take;
            left -= take;
        } while (left > 0);
        p = next;
    }
    return terminate(out, outsz, o);
}
