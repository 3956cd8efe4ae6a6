/*
 * session.c - the ESMTP state machine (RFC 5321 sections 3 and 4).
 *
 * Input is framed into command lines, or into DATA/BDAT content while a message is being received, and
 * processed in order, so a whole pipelined group (RFC 2920) in one read is answered in order. The session
 * stops taking input while a message is being committed, which keeps replies ordered and bounds what it
 * buffers: the connection stops reading until session_wants_input() says otherwise.
 *
 * Reply texts follow RFC 5321 section 4.2 with the enhanced codes of RFC 3463, on every reply but the
 * greeting, the EHLO/HELO replies and 354 (RFC 2034 section 4).
 */
#include "session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault_stage.h"
#include "log.h"
#include "smtp_data.h"
#include "smtp_parse.h"

#define REPLY_MAX        600  /* one formatted reply line, CRLF included */
#define SESSION_INBUF_MAX (SMTP_AUTH_LINE_MAX + 65536) /* a partial line plus one read while paused */

/* X(ENUM, "name") - the session states */
#define SESSION_STATE_LIST(X)                                                                                \
    X(INIT, "init")             /* before the greeting */                                                   \
    X(GREETED, "greeted")       /* waiting for EHLO/HELO */                                                 \
    X(READY, "ready")           /* EHLO done, no transaction */                                             \
    X(MAIL, "mail")             /* MAIL FROM accepted, no recipient yet */                                  \
    X(RCPT, "rcpt")             /* at least one recipient */                                                \
    X(DATA, "data")             /* reading DATA content */                                                  \
    X(BDAT, "bdat")             /* reading a BDAT chunk */                                                  \
    X(COMMIT, "commit")         /* message accepted, waiting for the store */                               \
    X(CLOSING, "closing")       /* last reply sent, input ignored */

typedef enum session_state {
#define STATE_ENUM(e, s) ST_##e,
    SESSION_STATE_LIST(STATE_ENUM)
#undef STATE_ENUM
} session_state;

static const char *const state_names[] = {
#define STATE_NAME(e, s) s,
    SESSION_STATE_LIST(STATE_NAME)
#undef STATE_NAME
};

struct session {
    uint64_t id;
    session_state state;
    const session_config *cfg;
    const session_host *host;
    void *ctx;
    char client[STORE_CLIENT_MAX];
    char listener[STORE_LISTENER_MAX];

    char *helo; /* last EHLO/HELO argument */
    int esmtp;  /* EHLO (not HELO): extensions and their parameters are allowed */
    unsigned errors;

    store_msg *tx;     /* the transaction in progress, NULL outside one */
    int tx_bdat;       /* the transaction uses BDAT: DATA is no longer allowed */
    int tx_oversize;   /* content passed max_message_size: it is read and dropped */
    int tx_oom;        /* memory ran out while storing content */
    smtp_data_decoder data;
    uint64_t bdat_size;        /* size of the chunk being read */
    uint64_t bdat_left;        /* chunk bytes still to read */
    int bdat_last;             /* the chunk is the last one */
    const char *bdat_reject;   /* reply for a rejected chunk, sent once its bytes are read */

    int discarding; /* an over-long line is being skipped up to its LF */
    int feeding;    /* inside session_feed: a synchronous commit must not re-enter it */
    char *in;       /* input not yet processed (a partial line, or what arrived while paused) */
    size_t in_len, in_cap;
};

/* -- helpers ------------------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* set_state - the one place states change; logged at debug level */
static void set_state(session *s, session_state next)
{
    if (s->state == next)
        return;
    if (log_enabled(LOG_DEBUG)) {
        char text[64];
        int n = snprintf(text, sizeof(text), "%s -> %s", state_names[s->state], state_names[next]);
        log_session(LOG_DEBUG, s->id, "state", text, (size_t)n);
    }
    s->state = next;
}

static void send_line(session *s, const char *line, size_t len)
{
    log_session(LOG_INFO, s->id, "reply", line, len);
    s->host->send(s->ctx, line, len);
    s->host->send(s->ctx, "\r\n", 2);
}

/* reply - one single-line reply, printf-style, CRLF added */
static void reply(session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(session *s, const char *fmt, ...)
{
    char line[REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    send_line(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void close_session(session *s, const char *reason)
{
    set_state(s, ST_CLOSING);
    s->host->close(s->ctx, reason);
}

/* error_reply - a reply to a bad command; too many of them end the session (RFC 5321 4.2.1 allows 421) */
static void error_reply(session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void error_reply(session *s, const char *fmt, ...)
{
    char line[REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        send_line(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    if (++s->errors >= s->cfg->max_errors) {
        reply(s, "421 4.7.0 %s Error: too many errors, closing connection", s->cfg->hostname);
        close_session(s, "too many errors");
    }
}

/* command_state - the state that waits for the next command, given the session's facts */
static session_state command_state(const session *s)
{
    if (s->tx != NULL)
        return s->tx->nrcpts > 0 ? ST_RCPT : ST_MAIL;
    return s->helo != NULL ? ST_READY : ST_GREETED;
}

static void reset_transaction(session *s)
{
    store_msg_unref(s->tx);
    s->tx = NULL;
    s->tx_bdat = 0;
    s->tx_oversize = 0;
    s->tx_oom = 0;
    if (s->state != ST_CLOSING && s->state != ST_INIT)
        set_state(s, command_state(s));
}

/* content_sink - body bytes into the message, until it passes the size limit */
static void content_sink(void *ctx, const char *data, size_t len)
{
    session *s = ctx;
    if (s->tx_oversize || s->tx_oom)
        return;
    if (s->tx->size + len > s->cfg->max_message_size) {
        s->tx_oversize = 1;
        return;
    }
    if (store_msg_append(s->tx, data, len) != 0)
        s->tx_oom = 1;
}

/* -- end of data ------------------------------------------------------------------------------------------ */

/* end_of_message - the content is complete: reject it, or hand it to the host to keep */
static void end_of_message(session *s)
{
    if (s->tx_oversize) {
        reply(s, "552 5.3.4 Error: message size exceeds fixed maximum message size (%llu octets)",
              (unsigned long long)s->cfg->max_message_size);
        reset_transaction(s);
        return;
    }
    if (s->tx_oom) {
        reply(s, "452 4.3.1 Error: insufficient system storage");
        reset_transaction(s);
        return;
    }
    if (!s->tx_bdat && s->data.longest_line > SMTP_TEXT_LINE_MAX) {
        reply(s, "554 5.6.0 Error: message has a line of %zu octets, over the limit of %d (RFC 5321 4.5.3.1.6)",
              s->data.longest_line, SMTP_TEXT_LINE_MAX);
        reset_transaction(s);
        return;
    }
    store_msg *m = s->tx;
    s->tx = NULL;
    m->received_ms = now_ms();
    set_state(s, ST_COMMIT);
    s->host->commit(s->ctx, m);
}

static void process_input(session *s);
static void bdat_chunk_done(session *s, uint64_t size);

void session_commit_done(session *s, const char *id)
{
    if (s->state != ST_COMMIT)
        return;
    if (id != NULL)
        reply(s, "250 2.0.0 Ok: queued as %s", id);
    else
        reply(s, "451 4.3.0 Error: could not store the message, try again later");
    reset_transaction(s);
    /* Input that arrived while the commit was in flight waits in s->in. */
    if (!s->feeding)
        process_input(s);
}

/* -- commands ------------------------------------------------------------------------------------------- */

typedef void (*command_fn)(session *s, const smtp_command *cmd);

/* need_no_arg - the command takes no argument: 501 if it has one */
static int need_no_arg(session *s, const smtp_command *cmd, const char *syntax)
{
    if (cmd->arg_len == 0)
        return 1;
    error_reply(s, "501 5.5.4 Syntax: %s", syntax);
    return 0;
}

static void cmd_ehlo_helo(session *s, const smtp_command *cmd, int esmtp)
{
    if (cmd->arg_len == 0) {
        error_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
    size_t n = 0;
    while (n < cmd->arg_len && cmd->arg[n] != ' ')
        n++;
    char *helo = malloc(n + 1);
    if (helo == NULL) {
        reply(s, "451 4.3.0 Error: out of memory");
        return;
    }
    memcpy(helo, cmd->arg, n);
    helo[n] = '\0';
    free(s->helo);
    s->helo = helo;
    s->esmtp = esmtp;
    /* RFC 5321 4.1.4: EHLO/HELO in a transaction resets it. */
    store_msg_unref(s->tx);
    s->tx = NULL;
    s->tx_bdat = s->tx_oversize = s->tx_oom = 0;
    set_state(s, ST_READY);

    if (!esmtp) {
        reply(s, "250 %s", s->cfg->hostname);
        return;
    }
    char size_line[48];
    snprintf(size_line, sizeof(size_line), "SIZE %llu", (unsigned long long)s->cfg->max_message_size);
    const char *caps[] = {
        size_line,  "PIPELINING", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8", "ENHANCEDSTATUSCODES",
        "DSN",      "HELP",
    };
    size_t ncaps = sizeof(caps) / sizeof(caps[0]);
    reply(s, "250-%s", s->cfg->hostname);
    for (size_t i = 0; i < ncaps; i++)
        reply(s, "250%c%s", i + 1 == ncaps ? ' ' : '-', caps[i]);
}

static void cmd_ehlo(session *s, const smtp_command *cmd)
{
    cmd_ehlo_helo(s, cmd, 1);
}

static void cmd_helo(session *s, const smtp_command *cmd)
{
    cmd_ehlo_helo(s, cmd, 0);
}

/* need_helo - 503 when no EHLO/HELO was given (RFC 5321 4.1.4) */
static int need_helo(session *s)
{
    if (s->helo != NULL)
        return 1;
    error_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
    return 0;
}

/* params_ok - common checks for MAIL/RCPT parameters: ESMTP only, no duplicates */
static int param_seen(session *s, unsigned *seen, unsigned bit, const smtp_param *p)
{
    if (*seen & bit) {
        error_reply(s, "501 5.5.4 Error: duplicate parameter %.*s", (int)p->key_len, p->key);
        return 1;
    }
    *seen |= bit;
    return 0;
}

static void cmd_mail(session *s, const smtp_command *cmd)
{
    if (!need_helo(s))
        return;
    if (s->tx != NULL) {
        error_reply(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    size_t skip = smtp_strip_keyword(cmd->arg, cmd->arg_len, "FROM:");
    if (skip == 0) {
        error_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    smtp_path path;
    size_t used = 0;
    smtp_path_status st = smtp_parse_path(cmd->arg + skip, cmd->arg_len - skip, 1, 0, &path, &used);
    if (st != SMTP_PATH_OK) {
        error_reply(s, "501 5.1.7 Bad sender address: %s", smtp_path_status_text(st));
        return;
    }

    const char *cur = cmd->arg + skip + used, *end = cmd->arg + cmd->arg_len;
    if (cur < end && *cur != ' ') {
        error_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]");
        return;
    }
    smtp_param p;
    int r;
    unsigned seen = 0;
    uint64_t declared = 0;
    const char *body_type = NULL;
    int smtputf8 = 0;
    while ((r = smtp_next_param(&cur, end, &p)) == 1) {
        if (!s->esmtp) {
            error_reply(s, "555 5.5.4 Error: parameters need EHLO, not HELO");
            return;
        }
        if (smtp_param_is(&p, "SIZE")) {
            if (param_seen(s, &seen, 1, &p))
                return;
            if (p.value == NULL || smtp_parse_number(p.value, p.value_len, &declared) != 0) {
                error_reply(s, "501 5.5.4 Error: SIZE needs a number");
                return;
            }
            if (declared > s->cfg->max_message_size) { /* RFC 1870 section 6.1 */
                reply(s, "552 5.3.4 Error: message size exceeds fixed maximum message size (%llu octets)",
                      (unsigned long long)s->cfg->max_message_size);
                return;
            }
        } else if (smtp_param_is(&p, "BODY")) {
            if (param_seen(s, &seen, 2, &p))
                return;
            if (smtp_value_is(&p, "7BIT"))
                body_type = "7BIT";
            else if (smtp_value_is(&p, "8BITMIME"))
                body_type = "8BITMIME";
            else if (smtp_value_is(&p, "BINARYMIME"))
                body_type = "BINARYMIME";
            else {
                error_reply(s, "501 5.5.4 Error: BODY must be 7BIT, 8BITMIME or BINARYMIME");
                return;
            }
        } else if (smtp_param_is(&p, "SMTPUTF8")) {
            if (param_seen(s, &seen, 4, &p))
                return;
            if (p.value != NULL) {
                error_reply(s, "501 5.5.4 Error: SMTPUTF8 takes no value");
                return;
            }
            smtputf8 = 1;
        } else if (smtp_param_is(&p, "RET")) { /* RFC 3461 section 4.3 */
            if (param_seen(s, &seen, 8, &p))
                return;
            if (!smtp_value_is(&p, "FULL") && !smtp_value_is(&p, "HDRS")) {
                error_reply(s, "501 5.5.4 Error: RET must be FULL or HDRS");
                return;
            }
        } else if (smtp_param_is(&p, "ENVID")) { /* RFC 3461 section 4.4 */
            if (param_seen(s, &seen, 16, &p))
                return;
            if (p.value == NULL || p.value_len > 100 || !smtp_xtext_valid(p.value, p.value_len)) {
                error_reply(s, "501 5.5.4 Error: ENVID must be xtext of at most 100 characters");
                return;
            }
        } else if (smtp_param_is(&p, "AUTH")) { /* RFC 4954 section 5: accepted, not trusted */
            if (param_seen(s, &seen, 32, &p))
                return;
            if (p.value == NULL || !smtp_xtext_valid(p.value, p.value_len)) {
                error_reply(s, "501 5.5.4 Error: AUTH must be xtext or <>");
                return;
            }
        } else {
            error_reply(s, "555 5.5.4 Error: unsupported parameter %.*s", (int)(p.key_len > 64 ? 64 : p.key_len),
                        p.key);
            return;
        }
    }
    if (r < 0) {
        error_reply(s, "501 5.5.4 Error: malformed parameters");
        return;
    }
    if (path.has_utf8 && !smtputf8) { /* RFC 6531 section 3.5 */
        reply(s, "553 5.6.7 Error: non-ASCII sender address needs the SMTPUTF8 parameter");
        return;
    }

    store_msg *m = store_msg_new();
    if (m == NULL || store_msg_set_sender(m, path.mailbox, path.len) != 0 ||
        store_msg_set_helo(m, s->helo, strlen(s->helo)) != 0) {
        store_msg_unref(m);
        reply(s, "451 4.3.0 Error: out of memory");
        return;
    }
    snprintf(m->client, sizeof(m->client), "%s", s->client);
    snprintf(m->listener, sizeof(m->listener), "%s", s->listener);
    m->session_id = (int64_t)s->id;
    m->body_type = body_type;
    m->smtputf8 = smtputf8;
    m->declared_size = declared;
    m->started_ms = now_ms();
    /* A declared SIZE is a good first guess for the buffer; never more than the limit. */
    if (declared > 0)
        (void)store_msg_reserve(m, (size_t)declared + 2);
    s->tx = m;
    set_state(s, ST_MAIL);
    reply(s, "250 2.1.0 Sender <%s> OK", path.mailbox);
}

/* notify_valid - NOTIFY=NEVER, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 section 4.1) */
static int notify_valid(const smtp_param *p)
{
    if (p->value == NULL)
        return 0;
    if (smtp_value_is(p, "NEVER"))
        return 1;
    const char *v = p->value, *end = p->value + p->value_len;
    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *item_end = comma ? comma : end;
        smtp_param item = {.value = v, .value_len = (size_t)(item_end - v)};
        if (!smtp_value_is(&item, "SUCCESS") && !smtp_value_is(&item, "FAILURE") && !smtp_value_is(&item, "DELAY"))
            return 0;
        v = comma ? comma + 1 : end;
        if (comma && v == end)
            return 0;
    }
    return 1;
}

static void cmd_rcpt(session *s, const smtp_command *cmd)
{
    if (s->tx == NULL) {
        error_reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->tx_bdat) {
        error_reply(s, "503 5.5.1 Error: RCPT not allowed after BDAT");
        return;
    }
    size_t skip = smtp_strip_keyword(cmd->arg, cmd->arg_len, "TO:");
    if (skip == 0) {
        error_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    smtp_path path;
    size_t used = 0;
    smtp_path_status st = smtp_parse_path(cmd->arg + skip, cmd->arg_len - skip, 0, 1, &path, &used);
    if (st != SMTP_PATH_OK) {
        error_reply(s, "501 5.1.3 Bad recipient address: %s", smtp_path_status_text(st));
        return;
    }
    const char *cur = cmd->arg + skip + used, *end = cmd->arg + cmd->arg_len;
    if (cur < end && *cur != ' ') {
        error_reply(s, "501 5.5.4 Syntax: RCPT TO:<address> [parameters]");
        return;
    }
    smtp_param p;
    int r;
    unsigned seen = 0;
    while ((r = smtp_next_param(&cur, end, &p)) == 1) {
        if (!s->esmtp) {
            error_reply(s, "555 5.5.4 Error: parameters need EHLO, not HELO");
            return;
        }
        if (smtp_param_is(&p, "NOTIFY")) {
            if (param_seen(s, &seen, 1, &p))
                return;
            if (!notify_valid(&p)) {
                error_reply(s, "501 5.5.4 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY");
                return;
            }
        } else if (smtp_param_is(&p, "ORCPT")) {
            if (param_seen(s, &seen, 2, &p))
                return;
            const char *semi = p.value ? memchr(p.value, ';', p.value_len) : NULL;
            if (semi == NULL || semi == p.value ||
                !smtp_xtext_valid(semi + 1, p.value_len - (size_t)(semi + 1 - p.value))) {
                error_reply(s, "501 5.5.4 Error: ORCPT must be addr-type;xtext");
                return;
            }
        } else {
            error_reply(s, "555 5.5.4 Error: unsupported parameter %.*s", (int)(p.key_len > 64 ? 64 : p.key_len),
                        p.key);
            return;
        }
    }
    if (r < 0) {
        error_reply(s, "501 5.5.4 Error: malformed parameters");
        return;
    }
    if (path.has_utf8 && !s->tx->smtputf8) {
        reply(s, "553 5.6.7 Error: non-ASCII recipient address needs SMTPUTF8 in MAIL FROM");
        return;
    }
    if (s->tx->nrcpts >= s->cfg->max_recipients) { /* RFC 5321 4.5.3.1.10 */
        reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (store_msg_add_rcpt(s->tx, path.mailbox, path.len) != 0) {
        reply(s, "451 4.3.0 Error: out of memory");
        return;
    }
    set_state(s, ST_RCPT);
    reply(s, "250 2.1.5 Recipient <%s> OK", path.mailbox);
}

/* transaction_ready - a transaction with recipients exists; reply with the right error otherwise */
static int transaction_ready(session *s)
{
    if (s->tx == NULL) {
        error_reply(s, "503 5.5.1 Error: need MAIL command");
        return 0;
    }
    if (s->tx->nrcpts == 0) {
        error_reply(s, "554 5.5.1 Error: no valid recipients");
        return 0;
    }
    return 1;
}

static void cmd_data(session *s, const smtp_command *cmd)
{
    if (!need_no_arg(s, cmd, "DATA") || !transaction_ready(s))
        return;
    if (s->tx_bdat) {
        error_reply(s, "503 5.5.1 Error: DATA not allowed after BDAT");
        return;
    }
    if (s->tx->body_type != NULL && strcmp(s->tx->body_type, "BINARYMIME") == 0) { /* RFC 3030 section 3 */
        error_reply(s, "503 5.5.1 Error: BODY=BINARYMIME needs BDAT, not DATA");
        return;
    }
    smtp_data_init(&s->data);
    set_state(s, ST_DATA);
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_bdat(session *s, const smtp_command *cmd)
{
    uint64_t size;
    int last;
    if (smtp_parse_bdat(cmd->arg, cmd->arg_len, &size, &last) != 0) {
        /* Without a size the chunk cannot be skipped: what follows is read as commands. */
        error_reply(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
        return;
    }
    /* RFC 3030 section 2: a rejected chunk is still read in full before the reply. */
    s->bdat_reject = NULL;
    if (!s->esmtp)
        s->bdat_reject = "503 5.5.1 Error: BDAT needs EHLO";
    else if (s->tx == NULL)
        s->bdat_reject = "503 5.5.1 Error: need MAIL command";
    else if (s->tx->nrcpts == 0)
        s->bdat_reject = "554 5.5.1 Error: no valid recipients";
    else if (size > s->cfg->max_message_size - s->tx->size)
        s->tx_oversize = 1;
    if (s->tx != NULL && s->bdat_reject == NULL)
        s->tx_bdat = 1;
    s->bdat_size = s->bdat_left = size;
    s->bdat_last = last;
    set_state(s, ST_BDAT);
    if (size == 0)
        bdat_chunk_done(s, 0);
}

/* bdat_chunk_done - all bytes of a chunk are in */
static void bdat_chunk_done(session *s, uint64_t size)
{
    if (s->bdat_reject != NULL) {
        error_reply(s, "%s", s->bdat_reject);
        s->bdat_reject = NULL;
        if (s->state == ST_BDAT)
            set_state(s, command_state(s));
        return;
    }
    if (s->tx_oversize || s->tx_oom || s->bdat_last) {
        end_of_message(s); /* rejects the oversize transaction, or commits it */
        return;
    }
    set_state(s, ST_RCPT);
    reply(s, "250 2.0.0 %llu octets received", (unsigned long long)size);
}

static void cmd_rset(session *s, const smtp_command *cmd)
{
    if (!need_no_arg(s, cmd, "RSET"))
        return;
    reset_transaction(s);
    reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(session *s, const smtp_command *cmd)
{
    (void)cmd; /* RFC 5321 4.1.1.9: a parameter is allowed and ignored */
    reply(s, "250 2.0.0 Ok");
}

static void cmd_vrfy(session *s, const smtp_command *cmd)
{
    if (cmd->arg_len == 0) {
        error_reply(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }
    /* RFC 5321 3.5.3: 252 when the server will not verify but accepts mail for the address. */
    reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(session *s, const smtp_command *cmd)
{
    (void)cmd;
    reply(s, "502 5.5.1 Error: EXPN not available");
}

static void cmd_help(session *s, const smtp_command *cmd)
{
    (void)cmd;
    reply(s, "214-2.0.0 smtpfault, a fake SMTP server for fault injection");
    reply(s, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT");
    reply(s, "214 2.0.0 End of HELP info");
}

static void cmd_quit(session *s, const smtp_command *cmd)
{
    (void)cmd;
    reply(s, "221 2.0.0 %s Bye", s->cfg->hostname);
    close_session(s, "client quit");
}

typedef struct command_def {
    const char *verb;
    fault_stage stage; /* where the fault engine is asked before the command proceeds */
    size_t max_line;   /* longest command line accepted, CRLF included */
    command_fn proceed;
} command_def;

static const command_def commands[] = {
    {"EHLO", FAULT_STAGE_EHLO, SMTP_COMMAND_LINE_MAX, cmd_ehlo},
    {"HELO", FAULT_STAGE_EHLO, SMTP_COMMAND_LINE_MAX, cmd_helo},
    {"MAIL", FAULT_STAGE_MAIL, SMTP_COMMAND_LINE_MAX, cmd_mail},
    {"RCPT", FAULT_STAGE_RCPT, SMTP_COMMAND_LINE_MAX, cmd_rcpt},
    {"DATA", FAULT_STAGE_DATA, SMTP_COMMAND_LINE_MAX, cmd_data},
    {"BDAT", FAULT_STAGE_DATA, SMTP_COMMAND_LINE_MAX, cmd_bdat},
    {"RSET", FAULT_STAGE_RSET, SMTP_COMMAND_LINE_MAX, cmd_rset},
    {"NOOP", FAULT_STAGE_NOOP, SMTP_COMMAND_LINE_MAX, cmd_noop},
    {"VRFY", FAULT_STAGE_VRFY, SMTP_COMMAND_LINE_MAX, cmd_vrfy},
    {"EXPN", FAULT_STAGE_VRFY, SMTP_COMMAND_LINE_MAX, cmd_expn},
    {"HELP", FAULT_STAGE_HELP, SMTP_COMMAND_LINE_MAX, cmd_help},
    {"QUIT", FAULT_STAGE_QUIT, SMTP_COMMAND_LINE_MAX, cmd_quit},
};

static const command_def *find_command(const smtp_command *cmd)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (smtp_verb_is(cmd, commands[i].verb))
            return &commands[i];
    return NULL;
}

/* handle_line - one command line, terminator removed */
static void handle_line(session *s, const char *line, size_t len, size_t raw_len)
{
    log_session(LOG_INFO, s->id, "command", line, len);
    if (memchr(line, '\0', len) != NULL) {
        error_reply(s, "500 5.5.2 Error: NUL character in command");
        return;
    }
    smtp_command cmd;
    smtp_split_command(line, len, &cmd);
    const command_def *def = find_command(&cmd);
    if (def == NULL) {
        error_reply(s, "500 5.5.2 Error: command not recognized");
        return;
    }
    if (raw_len > def->max_line) {
        error_reply(s, "500 5.5.2 Error: line too long (limit %zu octets, RFC 5321 4.5.3.1.4)", def->max_line);
        return;
    }
    def->proceed(s, &cmd);
}

/* -- input ------------------------------------------------------------------------------------------------ */

static int accepts_input(const session *s)
{
    return s->state != ST_COMMIT && s->state != ST_CLOSING && s->state != ST_INIT;
}

/* consume - process what can be processed of buf; returns the bytes taken */
static size_t consume(session *s, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len && accepts_input(s)) {
        const char *p = buf + off;
        size_t avail = len - off;
        if (s->state == ST_DATA) {
            int done;
            off += smtp_data_decode(&s->data, p, avail, content_sink, s, &done);
            if (done)
                end_of_message(s);
            continue;
        }
        if (s->state == ST_BDAT) {
            size_t take = s->bdat_left < avail ? (size_t)s->bdat_left : avail;
            if (s->bdat_reject == NULL && s->tx != NULL)
                content_sink(s, p, take);
            off += take;
            s->bdat_left -= take;
            if (s->bdat_left == 0)
                bdat_chunk_done(s, s->bdat_size);
            continue;
        }
        if (s->discarding) {
            const char *lf = memchr(p, '\n', avail);
            off = lf ? (size_t)(lf - buf) + 1 : len;
            s->discarding = lf == NULL;
            continue;
        }
        size_t line_len, used;
        smtp_line_status st = smtp_find_line(p, avail, SMTP_AUTH_LINE_MAX, &line_len, &used);
        if (st == SMTP_LINE_NEED_MORE)
            break;
        if (st == SMTP_LINE_TOO_LONG) {
            log_session(LOG_INFO, s->id, "command", p, avail);
            s->discarding = 1;
            error_reply(s, "500 5.5.2 Error: line too long (limit %d octets, RFC 5321 4.5.3.1.4)",
                        SMTP_COMMAND_LINE_MAX);
            continue;
        }
        off += used;
        handle_line(s, p, line_len, used);
    }
    return off;
}

/* keep - save unprocessed input; -1 when it would pass the buffer limit */
static int keep(session *s, const char *data, size_t len)
{
    if (s->in_len + len > SESSION_INBUF_MAX)
        return -1;
    if (s->in_len + len > s->in_cap) {
        size_t cap = s->in_cap ? s->in_cap : 1024;
        while (cap < s->in_len + len)
            cap *= 2;
        char *in = realloc(s->in, cap);
        if (in == NULL)
            return -1;
        s->in = in;
        s->in_cap = cap;
    }
    memcpy(s->in + s->in_len, data, len);
    s->in_len += len;
    return 0;
}

/* process_input - run the saved input through the state machine */
static void process_input(session *s)
{
    if (s->in_len == 0)
        return;
    s->feeding = 1;
    size_t used = consume(s, s->in, s->in_len);
    s->feeding = 0;
    s->in_len -= used;
    if (s->in_len > 0) {
        memmove(s->in, s->in + used, s->in_len);
    } else {
        /* Idle sessions hold no input buffer. */
        free(s->in);
        s->in = NULL;
        s->in_cap = 0;
    }
}

void session_feed(session *s, const char *data, size_t len)
{
    if (s->state == ST_CLOSING)
        return;
    if (s->in_len == 0) {
        /* The common case: straight from the read buffer, keeping only a partial line. */
        s->feeding = 1;
        size_t used = consume(s, data, len);
        s->feeding = 0;
        data += used;
        len -= used;
    } else if (keep(s, data, len) == 0) {
        process_input(s);
        return;
    }
    if (len > 0 && s->state != ST_CLOSING && keep(s, data, len) != 0) {
        reply(s, "421 4.7.0 %s Error: too much input while busy, closing connection", s->cfg->hostname);
        close_session(s, "input buffer overflow");
    }
}

/* -- lifecycle ------------------------------------------------------------------------------------------- */

session *session_new(const session_config *cfg, const session_host *host, void *ctx, const session_info *info)
{
    session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->id = info->id;
    s->cfg = cfg;
    s->host = host;
    s->ctx = ctx;
    s->state = ST_INIT;
    snprintf(s->client, sizeof(s->client), "%s", info->client);
    snprintf(s->listener, sizeof(s->listener), "%s", info->listener);
    return s;
}

void session_start(session *s)
{
    /* RFC 2034 section 4: no enhanced code on the greeting. */
    reply(s, "220 %s ESMTP smtpfault", s->cfg->hostname);
    set_state(s, ST_GREETED);
}

int session_wants_input(const session *s)
{
    return accepts_input(s);
}

int session_in_transaction(const session *s)
{
    return s->tx != NULL || s->state == ST_DATA || s->state == ST_BDAT || s->state == ST_COMMIT;
}

void session_timeout(session *s)
{
    if (s->state == ST_CLOSING)
        return;
    reply(s, "421 4.4.2 %s Error: timeout exceeded, closing connection", s->cfg->hostname);
    close_session(s, "idle timeout");
}

void session_shutdown(session *s)
{
    if (s->state == ST_CLOSING)
        return;
    reply(s, "421 4.3.2 %s Service shutting down, closing connection", s->cfg->hostname);
    close_session(s, "server shutdown");
}

const char *session_state_name(const session *s)
{
    return state_names[s->state];
}

void session_free(session *s)
{
    if (s == NULL)
        return;
    store_msg_unref(s->tx);
    free(s->helo);
    free(s->in);
    free(s);
}
