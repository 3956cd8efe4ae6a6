/*
 * smtp_parse.h - pure parsers for the SMTP command channel (RFC 5321 section 4.1, RFC 1869 parameters).
 *
 * Line framing, verb/argument split, reverse- and forward-path parsing with the length limits of
 * RFC 5321 section 4.5.3.1, ESMTP parameter iteration and the BDAT argument (RFC 3030). No allocation,
 * no I/O: every function works on a caller's buffer and reports how far it got.
 */
#ifndef SMTPFAULT_SMTP_PARSE_H
#define SMTPFAULT_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 section 4.5.3.1: sizes include the terminating CRLF where a line is concerned. */
#define SMTP_COMMAND_LINE_MAX 512   /* 4.5.3.1.4 command line */
#define SMTP_TEXT_LINE_MAX    1000  /* 4.5.3.1.6 text line in DATA */
#define SMTP_AUTH_LINE_MAX    12288 /* RFC 4954 section 4: AUTH and SASL response lines */
#define SMTP_PATH_MAX         256   /* 4.5.3.1.3 reverse-path / forward-path, brackets included */
#define SMTP_LOCAL_PART_MAX   64    /* 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX       255   /* 4.5.3.1.2 */

typedef enum smtp_line_status {
    SMTP_LINE_NEED_MORE, /* no line terminator yet, and the buffer is within the limit */
    SMTP_LINE_DONE,      /* a whole line: *line_len bytes without terminator, *consumed with it */
    SMTP_LINE_TOO_LONG,  /* max bytes seen without a terminator */
} smtp_line_status;

/*
 * smtp_find_line - frame one line at the start of buf. A line ends at LF; a CR just before it is part of
 * the terminator (bare LF is tolerated on the command channel, as most servers do). max counts the
 * terminator, like the RFC limits.
 */
smtp_line_status smtp_find_line(const char *buf, size_t len, size_t max, size_t *line_len, size_t *consumed);

typedef struct smtp_command {
    const char *verb; /* first word, not NUL-terminated */
    size_t verb_len;
    const char *arg; /* everything after the single space that follows the verb, maybe empty */
    size_t arg_len;
} smtp_command;

/* smtp_split_command - split a command line into verb and argument */
void smtp_split_command(const char *line, size_t len, smtp_command *cmd);

/* smtp_verb_is - case-insensitive comparison of the command's verb with verb */
int smtp_verb_is(const smtp_command *cmd, const char *verb);

/*
 * smtp_strip_keyword - if s starts with keyword (case-insensitive, e.g. "FROM:"), return the number of
 * bytes to skip, spaces after the keyword included (RFC 5321 forbids them; real clients send them and
 * real servers accept them). 0 when the keyword is missing.
 */
size_t smtp_strip_keyword(const char *s, size_t n, const char *keyword);

typedef enum smtp_path_status {
    SMTP_PATH_OK = 0,
    SMTP_PATH_SYNTAX,          /* not <mailbox>, bad characters, unbalanced quotes, ... */
    SMTP_PATH_TOO_LONG,        /* over SMTP_PATH_MAX */
    SMTP_PATH_LOCAL_TOO_LONG,  /* local part over SMTP_LOCAL_PART_MAX */
    SMTP_PATH_DOMAIN_TOO_LONG, /* domain over SMTP_DOMAIN_MAX */
    SMTP_PATH_BAD_UTF8,        /* bytes above 0x7F that are not UTF-8 */
} smtp_path_status;

typedef struct smtp_path {
    char mailbox[SMTP_PATH_MAX + 1]; /* "local@domain", "Postmaster", or "" for the null path */
    size_t len;
    int is_null;  /* "<>" */
    int has_utf8; /* non-ASCII bytes: needs SMTPUTF8 (RFC 6531) */
} smtp_path;

/*
 * smtp_parse_path - parse "<...>" at the start of s. A source route (<@a,@b:user@c>) is accepted and
 * dropped (RFC 5321 section 4.1.2 says to ignore it). *used is set to the bytes taken, '>' included.
 * allow_null accepts "<>" (reverse-path); allow_postmaster accepts "<Postmaster>" with no domain.
 */
smtp_path_status smtp_parse_path(const char *s, size_t n, int allow_null, int allow_postmaster,
                                 smtp_path *out, size_t *used);

/* smtp_path_status_text - a short human description of a status, for replies and logs */
const char *smtp_path_status_text(smtp_path_status status);

typedef struct smtp_param {
    const char *key;
    size_t key_len;
    const char *value; /* NULL when the parameter has no "=value" */
    size_t value_len;
} smtp_param;

/*
 * smtp_next_param - take the next "KEY[=VALUE]" from *cur (spaces skipped). Returns 1 and advances *cur,
 * 0 at the end, -1 when the text there is not a valid esmtp-param (RFC 5321 section 4.1.2).
 */
int smtp_next_param(const char **cur, const char *end, smtp_param *p);

/* smtp_param_is - case-insensitive key comparison */
int smtp_param_is(const smtp_param *p, const char *key);

/* smtp_value_is - case-insensitive value comparison (0 when the parameter has no value) */
int smtp_value_is(const smtp_param *p, const char *value);

/* smtp_parse_number - decimal digits only; values past UINT64_MAX saturate. -1 on anything else. */
int smtp_parse_number(const char *s, size_t n, uint64_t *out);

/* smtp_xtext_valid - RFC 3461 section 4 xtext: printable ASCII except '+' and '=', or "+HH" */
int smtp_xtext_valid(const char *s, size_t n);

/* smtp_parse_bdat - "SIZE [LAST]" (RFC 3030 section 2). 0 on success, -1 on a syntax error. */
int smtp_parse_bdat(const char *arg, size_t n, uint64_t *size, int *last);

/* smtp_params - what the MAIL FROM parameters declare (RCPT TO's are checked, not kept) */
typedef struct smtp_params {
    uint64_t size;         /* SIZE=, 0 when absent (RFC 1870) */
    const char *body_type; /* "7BIT", "8BITMIME", "BINARYMIME" (RFC 6152, 3030), NULL when absent */
    int smtputf8;          /* SMTPUTF8 (RFC 6531) */
} smtp_params;

typedef enum smtp_params_status {
    SMTP_PARAMS_OK,
    SMTP_PARAMS_NEED_EHLO,   /* a parameter after HELO */
    SMTP_PARAMS_UNSUPPORTED, /* a key this command does not take: bad is it */
    SMTP_PARAMS_DUPLICATE,   /* a key given twice: bad is the second */
    SMTP_PARAMS_BAD_VALUE,   /* bad's value is not what its key takes: reply says why */
    SMTP_PARAMS_TOO_BIG,     /* SIZE= past the limit (RFC 1870 section 6.1) */
    SMTP_PARAMS_MALFORMED,   /* the text is not a list of esmtp-params */
} smtp_params_status;

/* smtp_params_error - which parameter failed, and for SMTP_PARAMS_BAD_VALUE the whole 501 reply line */
typedef struct smtp_params_error {
    smtp_param bad;
    const char *reply;
} smtp_params_error;

/*
 * smtp_parse_mail_params - MAIL FROM's parameters in [cur, end): SIZE (at most max_size), BODY, SMTPUTF8,
 * RET, ENVID, AUTH, each at most once, checked in the order given (the first failure is the answer).
 * esmtp: the session said EHLO. Fills *out; on failure says which parameter in *err.
 */
smtp_params_status smtp_parse_mail_params(const char *cur, const char *end, int esmtp, uint64_t max_size,
                                          smtp_params *out, smtp_params_error *err);

/* smtp_parse_rcpt_params - RCPT TO's parameters: NOTIFY and ORCPT (RFC 3461), as smtp_parse_mail_params */
smtp_params_status smtp_parse_rcpt_params(const char *cur, const char *end, int esmtp,
                                          smtp_params_error *err);

#endif
