/*
 * conn_findings.c - the findings only the connection can see (findings.h): a client that speaks before
 * the greeting, one that leaves without QUIT, one that goes on after a 421 (in plain text or over TLS). The
 * session records them.
 */
#include "conn_internal.h"

#include <sys/socket.h>

#define EARLY_PEEK_MAX 120 /* bytes of an early talker's first line shown in its finding */

void conn_findings_before_output(conn *c)
{
    if (c->first_output_seen || c->out.len == 0 || c->s == NULL)
        return;
    c->first_output_seen = 1;
    /* Implicit TLS greets after a handshake the client rightly started: only plaintext greetings count. */
    if (c->implicit_tls || c->tls.phase != TLS_PHASE_NONE)
        return;
    /* The session reads nothing before its greeting, so whatever the socket holds now was sent before it. */
    uv_os_fd_t fd;
    char peek[EARLY_PEEK_MAX];
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return;
    ssize_t n = recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0)
        return;
    if (n >= 2 && (unsigned char)peek[0] == 0x16 && peek[1] == 3) { /* a ClientHello: TLS, not SMTP */
        session_not_smtp(c->s);
        return;
    }
    size_t len = 0;
    while (len < (size_t)n && peek[len] != '\r' && peek[len] != '\n')
        len++;
    session_finding(c->s, FINDING_EARLY_TALKER, peek, len);
}

void conn_findings_client_left(conn *c)
{
    /* Only a session that waited for the client: one that hung, paused or was closing had the client
     * rightly give up on it. */
    if (c->phase != CONN_OPEN || c->s == NULL || c->hanging || !session_awaits_command(c->s))
        return;
    if (c->tls.phase != TLS_PHASE_NONE && !conn_tls_active(&c->tls))
        return; /* a handshake the client abandoned: the TLS findings are the handshake's */
    char line[64];
    int n = snprintf(line, sizeof(line), "(closed the connection in state %s)", session_state_name(c->s));
    session_finding(c->s, FINDING_NO_QUIT, line, n > 0 ? (size_t)n : 0);
}

void conn_findings_after_close(conn *c, const char *data, size_t len)
{
    if (c->s == NULL || findings_has(session_findings(c->s), FINDING_COMMAND_AFTER_421))
        return; /* nothing more to find: the rest is not even decrypted */
    if (c->tls.phase == TLS_PHASE_NONE) {
        session_input_after_close(c->s, data, len);
        return;
    }
    /* Over TLS the commands come in records after our close_notify: decrypted only to be looked at. A
     * record wolfSSL cannot take or read (input past its limit, an error, the client's close_notify) ends
     * the looking, not the linger. */
    if (!conn_tls_active(&c->tls) || tls_conn_feed(c->tls.ssl, data, len) != 0)
        return;
    int n;
    while ((n = tls_conn_read(c->tls.ssl, c->srv->plain_buf, sizeof(c->srv->plain_buf))) > 0)
        session_input_after_close(c->s, c->srv->plain_buf, (size_t)n);
}

void conn_findings_announce(conn *c)
{
    if (c->story.fresh.n == 0)
        return;
    /* Taken first: the session's "finding" event comes back through conn_event, which calls this again. */
    findings fresh;
    findings_move(&fresh, &c->story.fresh);
    for (size_t i = 0; c->s != NULL && i < fresh.n; i++)
        session_story_finding(c->s, &fresh.items[i]);
    findings_free(&fresh);
}
