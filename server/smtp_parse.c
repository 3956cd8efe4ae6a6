/*
 * smtp_parse.c - SMTP command-channel parsers (RFC 5321 sections 4.1.1-4.1.3, 4.5.3.1; RFC 3030; RFC 3461).
 *
 * Grammar references are to RFC 5321 section 4.1.2 unless said otherwise. UTF-8 in mailboxes follows
 * RFC 6531 section 3.3: atext and sub-domains may hold UTF-8, which the caller accepts only with SMTPUTF8.
 */
#include "smtp_parse.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "utf8.h"

smtp_line_status smtp_find_line(const char *buf, size_t len, size_t max, size_t *line_len, size_t *consumed)
{
    size_t scan = len < max ? len : max;
    const char *lf = memchr(buf, '\n', scan);
    if (lf == NULL)
        return len >= max ? SMTP_LINE_TOO_LONG : SMTP_LINE_NEED_MORE;
    size_t n = (size_t)(lf - buf);
    *consumed = n + 1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    *line_len = n;
    return SMTP_LINE_DONE;
}

void smtp_split_command(const char *line, size_t len, smtp_command *cmd)
{
    size_t i = 0;
    while (i < len && line[i] != ' ')
        i++;
    cmd->verb = line;
    cmd->verb_len = i;
    if (i < len)
        i++; /* the one space between verb and argument */
    cmd->arg = line + i;
    cmd->arg_len = len - i;
    /* Trailing spaces are noise some clients add; they are never part of an argument. */
    while (cmd->arg_len > 0 && cmd->arg[cmd->arg_len - 1] == ' ')
        cmd->arg_len--;
}

int smtp_verb_is(const smtp_command *cmd, const char *verb)
{
    size_t n = strlen(verb);
    return cmd->verb_len == n && strncasecmp(cmd->verb, verb, n) == 0;
}

size_t smtp_strip_keyword(const char *s, size_t n, const char *keyword)
{
    size_t k = strlen(keyword);
    if (n < k || strncasecmp(s, keyword, k) != 0)
        return 0;
    while (k < n && s[k] == ' ')
        k++;
    return k;
}

/* atext (RFC 5322 section 3.2.3), extended with UTF-8 bytes by RFC 6531 */
static int is_atext(unsigned char c)
{
    if (c >= 0x80)
        return 1;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int is_let_dig(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] (a U-label under SMTPUTF8) */
static int domain_valid(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (c == '-') {
            if (label == 0)
                return 0;
        } else if (!is_let_dig(c)) {
            return 0;
        }
        if (++label > 63)
            return 0;
    }
    return label > 0 && s[n - 1] != '-';
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 / Standardized-tag ":" 1*dcontent ) "]" (section 4.1.3) */
static int address_literal_valid(const char *s, size_t n)
{
    char text[SMTP_DOMAIN_MAX + 1];
    if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n - 2 > SMTP_DOMAIN_MAX)
        return 0;
    memcpy(text, s + 1, n - 2);
    text[n - 2] = '\0';
    unsigned char addr[16];
    if (strncasecmp(text, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, text + 5, addr) == 1;
    if (inet_pton(AF_INET, text, addr) == 1)
        return 1;
    const char *colon = strchr(text, ':');
    if (colon == NULL || colon == text || colon[1] == '\0')
        return 0;
    for (const char *p = text; p < colon; p++)
        if (!is_let_dig((unsigned char)*p) && *p != '-')
            return 0;
    for (const char *p = colon + 1; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
            return 0;
    }
    return 1;
}

/* Local-part = Dot-string / Quoted-string; returns its length, 0 when malformed */
static size_t local_part_len(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (s[0] == '"') {
        for (size_t i = 1; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '"')
                return i + 1;
            if (c == '\\') { /* quoted-pairSMTP: %d92 %d32-126 */
                if (i + 1 >= n || (unsigned char)s[i + 1] < 32 || (unsigned char)s[i + 1] > 126)
                    return 0;
                i++;
            } else if (c < 32 || c == 127) { /* qtextSMTP: %d32-33 / %d35-91 / %d93-126, plus UTF-8 */
                return 0;
            }
        }
        return 0;
    }
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && is_atext((unsigned char)s[i]))
            i++;
        if (i == start)
            return 0; /* empty atom: leading, trailing or doubled dot */
        if (i < n && s[i] == '.') {
            i++;
            continue;
        }
        return i;
    }
}

smtp_path_status smtp_parse_path(const char *s, size_t n, int allow_null, int allow_postmaster,
                                 smtp_path *out, size_t *used)
{
    out->mailbox[0] = '\0';
    out->len = 0;
    out->is_null = 0;
    out->has_utf8 = 0;
    if (n == 0 || s[0] != '<')
        return SMTP_PATH_SYNTAX;

    /* Find the closing bracket; a quoted local part may contain '>'. */
    size_t close = 1;
    int quoted = 0;
    for (; close < n; close++) {
        char c = s[close];
        if (quoted) {
            if (c == '\\')
                close++;
            else if (c == '"')
                quoted = 0;
        } else if (c == '"') {
            quoted = 1;
        } else if (c == '>') {
            break;
        }
    }
    if (close >= n)
        return SMTP_PATH_SYNTAX;
    if (close + 1 > SMTP_PATH_MAX)
        return SMTP_PATH_TOO_LONG;
    *used = close + 1;

    const char *p = s + 1;
    size_t len = close - 1;
    if (len == 0) {
        if (!allow_null)
            return SMTP_PATH_SYNTAX;
        out->is_null = 1;
        return SMTP_PATH_OK;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] >= 0x80)
            out->has_utf8 = 1;
    if (out->has_utf8 && !utf8_valid(p, len))
        return SMTP_PATH_BAD_UTF8;

    if (p[0] == '@') { /* A-d-l ":" : obsolete source route, parsed and ignored */
        const char *colon = memchr(p, ':', len);
        if (colon == NULL)
            return SMTP_PATH_SYNTAX;
        const char *hop = p;
        while (hop < colon) {
            const char *comma = memchr(hop, ',', (size_t)(colon - hop));
            const char *hop_end = comma ? comma : colon;
            if (*hop != '@' || !domain_valid(hop + 1, (size_t)(hop_end - hop - 1)))
                return SMTP_PATH_SYNTAX;
            hop = comma ? comma + 1 : colon;
        }
        len -= (size_t)(colon + 1 - p);
        p = colon + 1;
    }

    if (allow_postmaster && len == 10 && strncasecmp(p, "postmaster", 10) == 0) {
        memcpy(out->mailbox, p, len);
    } else {
        size_t local = local_part_len(p, len);
        if (local == 0 || local >= len || p[local] != '@')
            return SMTP_PATH_SYNTAX;
        if (local > SMTP_LOCAL_PART_MAX)
            return SMTP_PATH_LOCAL_TOO_LONG;
        const char *domain = p + local + 1;
        size_t dlen = len - local - 1;
        if (dlen > SMTP_DOMAIN_MAX)
            return SMTP_PATH_DOMAIN_TOO_LONG;
        if (!(dlen > 0 && domain[0] == '[' ? address_literal_valid(domain, dlen)
                                           : domain_valid(domain, dlen)))
            return SMTP_PATH_SYNTAX;
        memcpy(out->mailbox, p, len);
    }
    out->mailbox[len] = '\0';
    out->len = len;
    return SMTP_PATH_OK;
}

const char *smtp_path_status_text(smtp_path_status status)
{
    switch (status) {
    case SMTP_PATH_OK:
        return "ok";
    case SMTP_PATH_SYNTAX:
        return "syntax error";
    case SMTP_PATH_TOO_LONG:
        return "path longer than 256 octets (RFC 5321 4.5.3.1.3)";
    case SMTP_PATH_LOCAL_TOO_LONG:
        return "local part longer than 64 octets (RFC 5321 4.5.3.1.1)";
    case SMTP_PATH_DOMAIN_TOO_LONG:
        return "domain longer than 255 octets (RFC 5321 4.5.3.1.2)";
    case SMTP_PATH_BAD_UTF8:
        return "address is not valid UTF-8";
    }
    return "bad address";
}

int smtp_next_param(const char **cur, const char *end, smtp_param *p)
{
    const char *s = *cur;
    while (s < end && *s == ' ')
        s++;
    if (s == end) {
        *cur = s;
        return 0;
    }
    /* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
    const char *k = s;
    while (s < end && (is_let_dig((unsigned char)*s) || (*s == '-' && s > k)) && (unsigned char)*s < 0x80)
        s++;
    if (s == k)
        return -1;
    p->key = k;
    p->key_len = (size_t)(s - k);
    p->value = NULL;
    p->value_len = 0;
    if (s < end && *s == '=') {
        /* esmtp-value = 1*(%d33-60 / %d62-126), and UTF-8 under RFC 6531 */
        const char *v = ++s;
        while (s < end && *s != ' ') {
            unsigned char c = (unsigned char)*s;
            if (c < 33 || c == '=' || c == 127)
                return -1;
            s++;
        }
        if (s == v)
            return -1;
        p->value = v;
        p->value_len = (size_t)(s - v);
    }
    if (s < end && *s != ' ')
        return -1;
    *cur = s;
    return 1;
}

int smtp_param_is(const smtp_param *p, const char *key)
{
    size_t n = strlen(key);
    return p->key_len == n && strncasecmp(p->key, key, n) == 0;
}

int smtp_value_is(const smtp_param *p, const char *value)
{
    size_t n = strlen(value);
    return p->value != NULL && p->value_len == n && strncasecmp(p->value, value, n) == 0;
}

int smtp_parse_number(const char *s, size_t n, uint64_t *out)
{
    if (n == 0)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *out = v;
    return 0;
}

static int is_hex_upper(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

int smtp_xtext_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            if (i + 2 >= n || !is_hex_upper(s[i + 1]) || !is_hex_upper(s[i + 2]))
                return 0;
            i += 2;
        } else if (c < 33 || c > 126 || c == '=') {
            return 0;
        }
    }
    return 1;
}

int smtp_parse_bdat(const char *arg, size_t n, uint64_t *size, int *last)
{
    size_t i = 0;
    while (i < n && arg[i] >= '0' && arg[i] <= '9')
        i++;
    if (i == 0 || i > 20 || smtp_parse_number(arg, i, size) != 0)
        return -1;
    *last = 0;
    if (i == n)
        return 0;
    if (arg[i] != ' ')
        return -1;
    while (i < n && arg[i] == ' ')
        i++;
    if (n - i == 4 && strncasecmp(arg + i, "LAST", 4) == 0) {
        *last = 1;
        return 0;
    }
    return -1;
}

/* -- MAIL FROM and RCPT TO parameters ---------------------------------------------------------------------
 */

#define SMTP_ENVID_MAX 100 /* RFC 3461 section 4.4 */

/* A parameter's value check: SMTP_PARAMS_OK, SMTP_PARAMS_BAD_VALUE or SMTP_PARAMS_TOO_BIG. */
typedef smtp_params_status (*param_check)(const smtp_param *p, smtp_params *out, uint64_t max_size);

/* param_rule - one parameter a command takes: its key, its check, the 501 when the check fails */
typedef struct param_rule {
    const char *key;
    param_check check;
    const char *bad_value;
} param_rule;

static smtp_params_status check_size(const smtp_param *p, smtp_params *out, uint64_t max_size)
{
    if (p->value == NULL || smtp_parse_number(p->value, p->value_len, &out->size) != 0)
        return SMTP_PARAMS_BAD_VALUE;
    return out->size > max_size ? SMTP_PARAMS_TOO_BIG : SMTP_PARAMS_OK;
}

static smtp_params_status check_body(const smtp_param *p, smtp_params *out, uint64_t max_size)
{
    static const char *const types[] = {"7BIT", "8BITMIME", "BINARYMIME"};
    (void)max_size;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (smtp_value_is(p, types[i])) {
            out->body_type = types[i];
            return SMTP_PARAMS_OK;
        }
    return SMTP_PARAMS_BAD_VALUE;
}

static smtp_params_status check_smtputf8(const smtp_param *p, smtp_params *out, uint64_t max_size)
{
    (void)max_size;
    if (p->value != NULL)
        return SMTP_PARAMS_BAD_VALUE;
    out->smtputf8 = 1;
    return SMTP_PARAMS_OK;
}

static smtp_params_status check_ret(const smtp_param *p, smtp_params *out, uint64_t max_size)
{
    (void)out, (void)max_size;
    return smtp_value_is(p, "FULL") || smtp_value_is(p, "HDRS") ? SMTP_PARAMS_OK : SMTP_PARAMS_BAD_VALUE;
}

static smtp_params_status check_envid(const smtp_param *p, smtp_params *out, uint64_t max_size)
{
    (void)out, (void)max_size;
    return p->value != NULL && p->value_len <= SMTP_ENVID_MAX && smtp_xtext_valid(p->value, p->value_len)
               ? SMTP_PARAMS_OK
               : SMTP_PARAMS_BAD_VALUE;
}

/* check_xtext - a value that is xtext (RFC 3461 section 4): MAIL FROM's AUTH= (RFC 4954 section 5) */
static smtp_params_status check_xtext(const smtp_param *p, smtp_params *out, uint64_t max_size)
{
    (void)out, (void)max_size;
    return p->value != NULL && smtp_xtext_valid(p->value, p->value_len) ? SMTP_PARAMS_OK
                                                                        : SMTP_PARAMS_BAD_VALUE;
}

/* check_notify - NEVER, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 section 4.1) */
static smtp_params_status check_notify(const smtp_param *p, smtp_params *out, uint64_t max_size)
{
    (void)out, (void)max_size;
    if (p->value == NULL)
        return SMTP_PARAMS_BAD_VALUE;
    if (smtp_value_is(p, "NEVER"))
        return SMTP_PARAMS_OK;
    const char *v = p->value, *end = p->value + p->value_len;
    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *item_end = comma ? comma : end;
        smtp_param item = {.value = v, .value_len = (size_t)(item_end - v)};
        if (!smtp_value_is(&item, "SUCCESS") && !smtp_value_is(&item, "FAILURE") &&
            !smtp_value_is(&item, "DELAY"))
            return SMTP_PARAMS_BAD_VALUE;
        v = comma ? comma + 1 : end;
        if (comma && v == end)
            return SMTP_PARAMS_BAD_VALUE;
    }
    return SMTP_PARAMS_OK;
}

/* check_orcpt - addr-type;xtext (RFC 3461 section 4.2) */
static smtp_params_status check_orcpt(const smtp_param *p, smtp_params *out, uint64_t max_size)
{
    (void)out, (void)max_size;
    const char *semi = p->value ? memchr(p->value, ';', p->value_len) : NULL;
    if (semi == NULL || semi == p->value ||
        !smtp_xtext_valid(semi + 1, p->value_len - (size_t)(semi + 1 - p->value)))
        return SMTP_PARAMS_BAD_VALUE;
    return SMTP_PARAMS_OK;
}

static const param_rule mail_rules[] = {
    {"SIZE", check_size, "501 5.5.4 Error: SIZE needs a number"},
    {"BODY", check_body, "501 5.5.4 Error: BODY must be 7BIT, 8BITMIME or BINARYMIME"},
    {"SMTPUTF8", check_smtputf8, "501 5.5.4 Error: SMTPUTF8 takes no value"},
    {"RET", check_ret, "501 5.5.4 Error: RET must be FULL or HDRS"},
    {"ENVID", check_envid, "501 5.5.4 Error: ENVID must be xtext of at most 100 characters"},
    {"AUTH", check_xtext, "501 5.5.4 Error: AUTH must be xtext or <>"}, /* accepted, not trusted */
};

static const param_rule rcpt_rules[] = {
    {"NOTIFY", check_notify, "501 5.5.4 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY"},
    {"ORCPT", check_orcpt, "501 5.5.4 Error: ORCPT must be addr-type;xtext"},
};

/* parse_params - the parameters in [cur, end) against rules (at most 32), in order, each key at most once */
static smtp_params_status parse_params(const char *cur, const char *end, int esmtp, const param_rule *rules,
                                       size_t nrules, uint64_t max_size, smtp_params *out,
                                       smtp_params_error *err)
{
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    uint32_t seen = 0;
    int r;
    while ((r = smtp_next_param(&cur, end, &err->bad)) == 1) {
        if (!esmtp)
            return SMTP_PARAMS_NEED_EHLO;
        size_t i = 0;
        while (i < nrules && !smtp_param_is(&err->bad, rules[i].key))
            i++;
        if (i == nrules)
            return SMTP_PARAMS_UNSUPPORTED;
        if (seen & (1u << i))
            return SMTP_PARAMS_DUPLICATE;
        seen |= 1u << i;
        smtp_params_status st = rules[i].check(&err->bad, out, max_size);
        if (st != SMTP_PARAMS_OK) {
            err->reply = rules[i].bad_value;
            return st;
        }
    }
    return r < 0 ? SMTP_PARAMS_MALFORMED : SMTP_PARAMS_OK;
}

smtp_params_status smtp_parse_mail_params(const char *cur, const char *end, int esmtp, uint64_t max_size,
                                          smtp_params *out, smtp_params_error *err)
{
    return parse_params(cur, end, esmtp, mail_rules, sizeof(mail_rules) / sizeof(mail_rules[0]), max_size,
                        out, err);
}

smtp_params_status smtp_parse_rcpt_params(const char *cur, const char *end, int esmtp, smtp_params_error *err)
{
    smtp_params unused;
    return parse_params(cur, end, esmtp, rcpt_rules, sizeof(rcpt_rules) / sizeof(rcpt_rules[0]), 0, &unused,
                        err);
}
