/*
 * conn.c - a client connection: socket I/O, TLS, timers, output buffering, commit of accepted messages,
 * the fault actions that need the socket or the clock, and the one close path.
 *
 * Lifetime: conn_accept() allocates; conn_close() is the only way out and is idempotent; memory is freed
 * in on_handle_closed() once both handles are closed and no --store-dir write still refers to the
 * connection. A graceful end (QUIT, 421) writes the last reply (and TLS close_notify), shuts the write side
 * down and keeps reading for a short linger period, so the client is not sent an RST while its last reply
 * is in flight. A reset fault never mixes with uv_shutdown: every reply queued before it is written and
 * acknowledged by the client's TCP first (a client reads what it received before the RST), then the RST.
 *
 * One timer per connection serves every wait in turn: the idle timeout, a fault's delay, a drip's next
 * byte, the linger after our FIN. TLS (tls.c) sits between the socket and the session: ciphertext in,
 * plaintext to the session, the session's replies encrypted on the way out.
 */
#include "conn.h"
#include "conn_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "fault_gate.h"
#include "listener.h"
#include "log.h"
#include "sf_assert.h"
#include "store_disk.h"
#include "tls.h"

#define CONN_WRITE_QUEUE_MAX (256 * 1024) /* stop reading while this much output waits for the client */
#define CONN_LINGER_MS       2000         /* after our FIN, wait this long for the client's */
#define CONN_OUT_INITIAL     512          /* first output buffer; most batches are a reply or two */
#define CONN_DRIP_TICK_MS    100          /* a drip faster than 10 bytes/s sends every tick */
#define CONN_RESET_POLL_MS   5 /* before a reset fault's RST: how often to look at the send queue */

typedef struct write_req {
    uv_write_t req;
    conn *c;
    char *data;
} write_req;

static void reset_when_delivered(conn *c);
static void conn_after_session(conn *c);
static void update_reading(conn *c);

/* dripping - a drip is in progress (until its last tick finds nothing left) */
static int dripping(const conn *c)
{
    return c->drip.len > 0;
}

conn *conn_next(conn *c)
{
    return LIST_NEXT(c, link);
}

/* -- events --------------------------------------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* conn_event - one transcript event: the connection's own transcript, the log, admin subscribers */
void conn_event(void *ctx, int level, const char *name, const char *text, size_t len)
{
    conn *c = ctx;
    /* Kept only for the admin socket's sessions.get; timed from the loop's clock, which costs nothing. */
    if (level <= LOG_INFO && c->srv->admin != NULL) {
        transcript_add(&c->transcript, c->started_wall_ms + (int64_t)(uv_now(c->srv->loop) - c->started_ms),
                       name, text, len);
        /* Delays between connections are measured: one clock for all, to the millisecond, not the loop's. */
        client_story_event(&c->srv->stories, &c->story, wall_ms(), name, text, len);
    }
    scope_event(c->sc, c->id, level, name, text, len);
    conn_findings_announce(c);
}

void conn_eventf(conn *c, int level, const char *name, const char *fmt, ...)
{
    /* Formatted only when someone reads it; the admin socket sees every event up to info, whatever the
     * log level. */
    if (!log_enabled((log_level)level) && (level > LOG_INFO || c->srv->admin == NULL))
        return;
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_vformat(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n > 0)
        conn_event(c, level, name, text, n);
}

/* -- timer ------------------------------------------------------------------------------------------------
 */

static void on_timer(uv_timer_t *t);

void conn_timer_set(conn *c, conn_timer_use use, uint64_t ms)
{
    c->timer_use = use;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* timer_idle - the idle timeout; its repeat value lets each read restart it with uv_timer_again */
void conn_timer_idle(conn *c)
{
    uint64_t ms = (uint64_t)c->srv->cfg->idle_timeout_s * 1000;
    c->timer_use = TIMER_IDLE;
    uv_timer_start(&c->timer, on_timer, ms, ms);
}

/* -- freeing -------------------------------------------------------------------------------------------- */

static void maybe_free(conn *c)
{
    if (c->handles_open > 0 || c->commit_pending)
        return;
    server *srv = c->srv;
    scope *sc = c->sc;
    LIST_REMOVE(c, link);
    sc->nconns--;
    srv->nconns--;
    session_free(c->s);
    fault_conn_free(c->faults);
    conn_tls_free(&c->tls);
    bytebuf_release(&c->out);
    bytebuf_release(&c->drip);
    transcript_free(&c->transcript);
    free(c);
    scope_conn_gone(sc);
    server_conn_gone(srv);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    SF_ASSERT(c->handles_open > 0); /* one callback per handle closed */
    c->handles_open--;
    maybe_free(c);
}

/* record_session - what the admin socket keeps of a closed session */
static void record_session(conn *c, const char *reason)
{
    session_record rec;
    memset(&rec, 0, sizeof(rec));
    rec.id = c->id;
    snprintf(rec.client, sizeof(rec.client), "%s", c->client);
    rec.listener = c->l->name;
    if (c->s != NULL) {
        const char *helo = session_helo(c->s), *user = session_user(c->s);
        rec.helo = helo ? strdup(helo) : NULL;
        rec.user = user ? strdup(user) : NULL;
    }
    if (conn_tls_active(&c->tls)) {
        rec.tls_version = tls_conn_version(c->tls.ssl);
        rec.tls_cipher = tls_conn_cipher(c->tls.ssl);
    }
    snprintf(rec.end_reason, sizeof(rec.end_reason), "%s", reason);
    rec.started_ms = c->started_wall_ms;
    rec.ended_ms = wall_ms();
    rec.bytes_in = c->bytes_in;
    rec.bytes_out = c->bytes_out;
    rec.messages = c->messages;
    transcript_move(&rec.transcript, &c->transcript);
    if (c->s != NULL) {
        client_story_session_end(&c->srv->stories, &c->story, session_findings(c->s));
        findings_move(&rec.findings, session_findings(c->s));
    }
    scope_record_session(c->sc, &rec);
}

/* conn_close - the one close path: idempotent; frees once every handle has closed */
void conn_close(conn *c, const char *reason, int reset)
{
    if (c->phase == CONN_CLOSED)
        return;
    c->phase = CONN_CLOSED;
    conn_eventf(c, LOG_INFO, "close", "%s (in %llu bytes, out %llu bytes, %llu ms)", reason,
                (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
                (unsigned long long)(uv_now(c->srv->loop) - c->started_ms));
    record_session(c, reason);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (peer_watch_close(&c->watch, on_handle_closed))
        c->handles_open++;
    /* Either close cancels queued writes: their callbacks free them. */
    if (reset && uv_tcp_close_reset(&c->tcp, (uv_close_cb)on_handle_closed) == 0)
        return;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* -- output -----------------------------------------------------------------------------------------------
 */

/* unacked_bytes - output the kernel holds that the client's TCP has not acknowledged (0 where unknown) */
static int unacked_bytes(conn *c)
{
    int n = 0;
#ifdef TIOCOUTQ
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || ioctl(fd, TIOCOUTQ, &n) != 0)
        return 0;
#else
    (void)c;
#endif
    return n;
}

/*
 * reset_when_delivered - a reset fault's RST, once every reply queued before it is written and acknowledged
 * (an RST discards whatever the kernel still holds) and, when asked, once the client sends what comes next;
 * at reset_deadline whatever the client does.
 */
static void reset_when_delivered(conn *c)
{
    uint64_t now = uv_now(c->srv->loop);
    if (c->reset_deadline == 0)
        c->reset_deadline = now + CONN_LINGER_MS;
    if (now < c->reset_deadline && (c->writes_pending > 0 || unacked_bytes(c) > 0)) {
        conn_timer_set(c, TIMER_RESET, CONN_RESET_POLL_MS);
        return;
    }
    if (now < c->reset_deadline && c->reset_after_input && !c->eof && c->bytes_in == c->reset_in_mark) {
        c->reset_reading = 1;
        update_reading(c);
        conn_timer_set(c, TIMER_RESET, c->reset_deadline - now);
        return;
    }
    conn_close(c, c->end_reason, 1);
}

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    conn *c = w->c;
    free(w->data);
    free(w);
    SF_ASSERT(c->writes_pending > 0);
    c->writes_pending--;
    if (status == 0 && c->reset_at_end && c->phase == CONN_FLUSHING && !dripping(c)) {
        reset_when_delivered(c);
        return;
    }
    if (status < 0) {
        if (status != UV_ECANCELED)
            conn_close(c,
                       status == UV_EPIPE || status == UV_ECONNRESET ? "client reset the connection"
                                                                     : "write failed",
                       0);
        return;
    }
    if (c->phase == CONN_OPEN)
        update_reading(c); /* the queue may have drained below the limit */
}

/* queue_write - hand data (malloc'd, ownership passes) to libuv */
void conn_queue_write(conn *c, char *data, size_t len)
{
    if (c->phase == CONN_CLOSED || len == 0) {
        free(data);
        return;
    }
    write_req *w = malloc(sizeof(*w));
    if (w == NULL) {
        free(data);
        conn_close(c, "out of memory", 0);
        return;
    }
    w->c = c;
    w->data = data;
    uv_buf_t buf = uv_buf_init(data, (unsigned)len);
    c->bytes_out += len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
        free(data);
        free(w);
        conn_close(c, "write failed", 0);
        return;
    }
    c->writes_pending++;
}

/* send_plain - session output to the client, encrypted when TLS is active */
static void send_plain(conn *c, char *data, size_t len)
{
    if (c->tls.phase != TLS_PHASE_ACTIVE) {
        conn_queue_write(c, data, len);
        return;
    }
    conn_tls_send(c, data, len);
}

static void drip_tick(conn *c)
{
    SF_ASSERT(c->drip_off <= c->drip.len);
    size_t left = c->drip.len - c->drip_off;
    if (left == 0) {
        bytebuf_release(&c->drip);
        c->drip_off = 0;
        conn_timer_idle(c);
        session_resume(c->s);
        conn_after_session(c);
        return;
    }
    /* About one tick per CONN_DRIP_TICK_MS: n bytes, then a wait of n/bps seconds, so any rate holds. */
    uint32_t bps = c->drip_rate ? c->drip_rate : 1;
    size_t n = bps < 10 ? 1 : bps / 10;
    uint64_t wait = ((uint64_t)n * 1000 + bps / 2) / bps;
    if (n > left)
        n = left;
    char *chunk = malloc(n);
    if (chunk == NULL) {
        conn_close(c, "out of memory", 0);
        return;
    }
    memcpy(chunk, c->drip.data + c->drip_off, n);
    c->drip_off += n;
    send_plain(c, chunk, n);
    if (c->phase != CONN_CLOSED)
        conn_timer_set(c, TIMER_DRIP, c->drip_off == c->drip.len ? 0 : wait);
}

/* drip_append - output that comes while a drip runs goes after it, so that replies stay whole and in order */
static void drip_append(conn *c, char *data, size_t len)
{
    int r = bytebuf_append(&c->drip, data, len);
    free(data);
    if (r != 0)
        conn_close(c, "out of memory", 0);
}

/* drip_finish - the rest of the drip at once: the server is stopping, and its deadline is a deadline */
static void drip_finish(conn *c)
{
    if (!dripping(c))
        return;
    size_t total;
    char *rest = bytebuf_take(&c->drip, &total);
    size_t len = total - c->drip_off;
    memmove(rest, rest + c->drip_off, len);
    c->drip_off = 0;
    conn_timer_idle(c);
    send_plain(c, rest, len);
}

/* flush - the batch's output: written now, and from drip_from on handed to the drip */
void conn_flush(conn *c)
{
    if (c->out.len == 0 || c->phase == CONN_CLOSED)
        return;
    size_t len;
    char *data = bytebuf_take(&c->out, &len);
    size_t from = c->drip_bps > 0 ? c->drip_from : len;
    SF_ASSERT(from <= len); /* drip_from marks a point in this batch */
    if (dripping(c)) {
        drip_append(c, data, len);
        return;
    }
    if (from < len) {
        if (bytebuf_append(&c->drip, data + from, len - from) != 0) {
            free(data);
            conn_close(c, "out of memory", 0);
            return;
        }
        c->drip_off = 0;
        c->drip_rate = c->drip_bps;
        c->drip_bps = 0;
    }
    if (from > 0)
        send_plain(c, data, from);
    else
        free(data);
    if (dripping(c) && c->phase != CONN_CLOSED)
        drip_tick(c);
}

static void host_send(void *ctx, const char *data, size_t len)
{
    conn *c = ctx;
    if (c->phase == CONN_CLOSED)
        return;
    if (bytebuf_append(&c->out, data, len) != 0)
        conn_close(c, "out of memory", 0);
}

/* -- graceful end -----------------------------------------------------------------------------------------
 */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    if (c->phase == CONN_CLOSED)
        return;
    if (status < 0 || c->eof) {
        conn_close(c,
                   status == UV_ECONNRESET || status == UV_EPIPE ? "client reset the connection"
                   : status < 0                                  ? "shutdown failed"
                                                                 : c->end_reason,
                   0);
        return;
    }
    /* Keep reading (and discarding) until the client's FIN, so unread input cannot turn our close into an
     * RST that destroys the reply the client has not read yet. */
    c->phase = CONN_LINGERING;
    conn_timer_set(c, TIMER_LINGER, CONN_LINGER_MS);
    update_reading(c);
}

/* end_gracefully - write what is queued (and close_notify), then FIN */
void conn_end_gracefully(conn *c, const char *reason)
{
    if (c->phase != CONN_OPEN)
        return;
    c->phase = CONN_FLUSHING;
    c->end_reason = reason;
}

static void host_close(void *ctx, const char *reason, int reset)
{
    conn *c = ctx;
    c->reset_at_end = reset; /* the replies queued (or dripped) so far go out first */
    conn_end_gracefully(c, reason);
}

/* -- commit --------------------------------------------------------------------------------------------- */

static void log_stored(conn *c, const store_msg *m, const char *how)
{
    conn_eventf(c, LOG_INFO, "message", "%s: %zu bytes, %zu recipient%s%s", m->id, m->size, m->nrcpts,
                m->nrcpts == 1 ? "" : "s", how);
}

static void on_disk_done(void *ctx, store_msg *m, int status)
{
    conn *c = ctx;
    c->commit_pending = 0;
    if (status == 0) {
        c->messages++;
        log_stored(c, m, "");
        scope_message_stored(c->sc, m);
    } else {
        log_server(LOG_ERROR, "cannot write message %s to %s: %s", m->id, c->srv->cfg->store_dir,
                   uv_strerror(status));
    }
    if (c->phase == CONN_CLOSED) {
        maybe_free(c);
        return;
    }
    session_commit_done(c->s, status == 0 ? m->id : NULL);
    conn_after_session(c);
}

static void host_commit(void *ctx, store_msg *m)
{
    conn *c = ctx;
    server *srv = c->srv;
    store_assign_id(&c->sc->store, m);
    if (m->discard) {
        c->sc->discarded++;
        log_stored(c, m, ", discarded by the fault (not kept)");
        session_commit_done(c->s, m->id);
        store_msg_unref(m);
        return;
    }
    if (srv->cfg->store_dir == NULL) {
        c->messages++;
        log_stored(c, m, "");
        scope_message_stored(c->sc, m);
        session_commit_done(c->s, m->id);
        store_msg_unref(m);
        return;
    }
    int r = store_disk_write(srv->loop, srv->cfg->store_dir, m, on_disk_done, c);
    if (r != 0) {
        log_server(LOG_ERROR, "cannot queue message %s for %s: %s", m->id, srv->cfg->store_dir,
                   uv_strerror(r));
        session_commit_done(c->s, NULL);
    } else {
        c->commit_pending = 1;
    }
    store_msg_unref(m);
}

/* -- faults and TLS the session asks for ---------------------------------------------------------------- */

static void host_wait(void *ctx, uint32_t ms)
{
    conn *c = ctx;
    /* libuv counts from the loop's cached millisecond clock: refresh it, and round up, so that a delay
     * never ends early (it ends at most a millisecond late instead). */
    uv_update_time(c->srv->loop);
    conn_timer_set(c, TIMER_WAIT, (uint64_t)ms + 1);
}

static void host_drip(void *ctx, uint32_t bps)
{
    conn *c = ctx;
    c->drip_bps = bps;
    c->drip_from = c->out.len; /* the output before is not the rule's to slow down */
}

static int64_t host_wall_ms(void *ctx)
{
    (void)ctx;
    return wall_ms();
}

static int64_t host_now(void *ctx)
{
    (void)ctx;
    return server_now_ms();
}

static void host_starttls(void *ctx)
{
    conn *c = ctx;
    c->tls.phase = TLS_PHASE_PENDING;
}

static const session_host conn_host = {host_send, host_close, host_commit,  host_starttls, host_wait,
                                       host_drip, host_now,   host_wall_ms, conn_event};

/* -- input ------------------------------------------------------------------------------------------------
 */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = h->data;
    *buf = uv_buf_init(c->srv->read_buf, sizeof(c->srv->read_buf));
}

static void start_session(conn *c);

static void on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    switch (c->timer_use) {
    case TIMER_IDLE:
        if (c->s == NULL || c->hanging) {
            conn_close(c, "idle timeout", 0);
            return;
        }
        if (conn_tls_handshaking(&c->tls)) {
            /* In the middle of a handshake (or a fault that stalls it) a 421 in plain text would be read as
             * a TLS record: close without a word, as a hang does. */
            conn_close(c, "idle timeout during the TLS handshake", 0);
            return;
        }
        session_timeout(c->s);
        conn_after_session(c);
        return;
    case TIMER_WAIT:
        conn_timer_idle(c);
        session_resume(c->s);
        conn_after_session(c);
        return;
    case TIMER_DRIP:
        drip_tick(c);
        return;
    case TIMER_TLS_DELAY:
        conn_tls_delay_over(c);
        conn_after_session(c);
        return;
    case TIMER_START:
        conn_timer_idle(c);
        start_session(c);
        return;
    case TIMER_LINGER:
        conn_close(c, c->end_reason, 0);
        return;
    case TIMER_RESET:
        reset_when_delivered(c);
        return;
    }
}

/* note_clienthello_on_plain - the first bytes on a plaintext port are a TLS record: say so in the transcript
 */
static void note_clienthello_on_plain(conn *c, const char *buf, size_t n)
{
    if (n < 3 || (unsigned char)buf[0] != 0x16 || buf[1] != 3)
        return;
    conn_eventf(c, LOG_INFO, "tls",
                "the client started a TLS handshake on a plaintext port: it expects implicit TLS (port 465), "
                "this listener speaks %s",
                c->l->cfg.starttls ? "plain SMTP with STARTTLS" : "plain SMTP");
    if (c->s != NULL) /* what follows is TLS read as commands: none of it is the client's SMTP */
        session_not_smtp(c->s);
}

/* client_gone - the client shut its side down (or reset): one answer, whether a read or the watch saw it */
static void client_gone(conn *c, int reset)
{
    conn_findings_client_left(c);
    if (reset) {
        conn_close(c, "client reset the connection", 0);
        return;
    }
    c->eof = 1;
    if (c->phase == CONN_LINGERING) {
        conn_close(c, c->end_reason, 0);
    } else if (c->phase == CONN_OPEN) {
        if (c->tls.phase == TLS_PHASE_HANDSHAKE)
            conn_eventf(c, LOG_INFO, "tls", "the client closed the connection during the TLS handshake");
        conn_close(c,
                   c->s != NULL && session_in_transaction(c->s)
                       ? "client closed the connection mid-transaction"
                       : "client closed the connection",
                   0);
    } else if (c->reset_reading) {
        conn_close(c, c->end_reason, 1);
    } else if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp); /* FLUSHING: the shutdown callback closes */
        c->reading = 0;
    }
}

static void on_peer_gone(void *ctx, int reset)
{
    conn *c = ctx;
    if (c->phase == CONN_OPEN)
        client_gone(c, reset);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = stream->data;
    if (nread == 0 || c->phase == CONN_CLOSED)
        return;
    if (nread < 0) {
        if (nread == UV_EOF || nread == UV_ECONNRESET)
            client_gone(c, nread == UV_ECONNRESET);
        else
            conn_close(c, uv_strerror((int)nread), 0);
        return;
    }
    if (c->bytes_in == 0 && c->tls.phase == TLS_PHASE_NONE && c->tls.ssl == NULL && !c->implicit_tls)
        note_clienthello_on_plain(c, buf->base, (size_t)nread);
    c->bytes_in += (uint64_t)nread;
    if (c->reset_reading) {
        conn_close(c, c->end_reason, 1); /* the client went on: the reset meets it mid-stream */
        return;
    }
    if (c->phase == CONN_LINGERING)
        conn_findings_after_close(c, buf->base, (size_t)nread);
    if (c->phase != CONN_OPEN || c->hanging)
        return; /* lingering, flushing or hanging: input is discarded */
    if (c->timer_use == TIMER_IDLE)
        uv_timer_again(&c->timer);
    if (c->tls.phase != TLS_PHASE_NONE) {
        if (!conn_tls_feed(c, buf->base, (size_t)nread))
            return;
    } else {
        if (c->s == NULL || session_discards_input(c->s))
            return;
        session_feed(c->s, buf->base, (size_t)nread);
    }
    conn_after_session(c);
}

/* update_reading - read only when the session takes input and the client reads its replies */
static void update_reading(conn *c)
{
    int want;
    if (c->phase == CONN_LINGERING || c->reset_reading)
        want = !c->eof;
    else if (c->hanging || c->tls.phase == TLS_PHASE_STALLED || c->tls.phase == TLS_PHASE_ALERT ||
             c->tls.phase == TLS_PHASE_RAW)
        want = c->phase == CONN_OPEN && !c->eof && c->timer_use != TIMER_TLS_DELAY;
    else if (c->tls.phase == TLS_PHASE_HANDSHAKE)
        want = c->phase == CONN_OPEN && !c->eof;
    else
        want = c->phase == CONN_OPEN && !c->eof && c->s != NULL &&
               (session_wants_input(c->s) || session_discards_input(c->s)) && !dripping(c) &&
               c->tcp.write_queue_size <= CONN_WRITE_QUEUE_MAX;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    /* Not reading an open session (a delay, a commit, a drip): the client may leave all the same. */
    if (c->phase == CONN_OPEN && !c->reading && !c->eof) {
        if (peer_watch_start(&c->watch, c->srv->loop, &c->tcp, c) != 0)
            peer_watch_stop(&c->watch); /* the wait goes on unwatched, as before */
    } else {
        peer_watch_stop(&c->watch);
    }
}

/* after_session - after every call into the session: write its output, follow its wishes */
static void conn_after_session(conn *c)
{
    if (c->phase == CONN_CLOSED)
        return;
    /* The 421 waits for a dripped reply to end (at the drain deadline the drip ends at once). */
    if (c->phase == CONN_OPEN && c->drain_requested && c->s != NULL && !session_in_transaction(c->s) &&
        !dripping(c))
        session_shutdown(c->s);
    conn_findings_before_output(c);
    conn_flush(c);
    c->drip_bps = 0;
    if (c->phase == CONN_OPEN && c->tls.phase == TLS_PHASE_PENDING) {
        conn_tls_begin(c); /* the 220 is queued in plaintext, ahead of anything TLS */
        if (c->phase == CONN_OPEN && c->tls.phase == TLS_PHASE_NONE)
            conn_flush(c); /* a plaintext fault: the session spoke again */
    }
    if (c->phase == CONN_CLOSED)
        return;
    if (c->phase == CONN_FLUSHING && !dripping(c) && c->reset_at_end) {
        reset_when_delivered(c);
        return;
    }
    if (c->phase == CONN_FLUSHING && !dripping(c)) {
        uv_timer_stop(&c->timer);
        conn_tls_close_notify(c);
        c->shutdown_req.data = c;
        /* uv_shutdown waits for the queued writes, then sends FIN. */
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
            conn_close(c, "shutdown failed", 0);
        else
            update_reading(c);
        return;
    }
    if (c->phase == CONN_OPEN)
        update_reading(c);
}

/* -- accept and stop ----------------------------------------------------------------------------------------
 */

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t outsz, fault_addr *addr)
{
    char host[64] = "?";
    memset(addr, 0, sizeof(*addr));
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, host, sizeof(host));
        snprintf(out, outsz, "[%s]:%d", host, ntohs(a->sin6_port));
        addr->family = 6;
        memcpy(addr->bytes, &a->sin6_addr, 16);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, host, sizeof(host));
        snprintf(out, outsz, "%s:%d", host, ntohs(a->sin_port));
        addr->family = 4;
        memcpy(addr->bytes, &a->sin_addr, 4);
    }
}

/* start_session - the connect stage is passed: greet, or begin the implicit TLS handshake */
static void start_session(conn *c)
{
    if (c->implicit_tls)
        conn_tls_begin(c);
    else
        session_start(c->s);
    conn_after_session(c);
}

/* connect_stage - the fault engine before the greeting; 1 when the session may start now */
static int connect_stage(conn *c)
{
    fault_facts f;
    memset(&f, 0, sizeof(f));
    const fault_action *a = fault_gate_decide(c->faults, FAULT_STAGE_CONNECT, &f, server_now_ms(),
                                              &c->srv->decision, conn_event, c);
    if (a == NULL)
        return 1;
    if (a->hang) {
        c->hanging = 1;
        update_reading(c);
        return 0;
    }
    if (a->reply != NULL || a->raw != NULL) {
        /* Said instead of the greeting; the connection then closes (a refusal at connect). */
        const char *data = a->reply ? a->reply : a->raw;
        size_t len = a->reply ? a->reply_len : a->raw_len;
        if (a->truncate > 0 && a->truncate < len)
            len = a->truncate;
        conn_event(c, LOG_INFO, "reply", data, len >= 2 && data[len - 2] == '\r' ? len - 2 : len);
        host_send(c, data, len);
        c->drip_bps = a->drip_bps;
        c->reset_at_end = a->close == FAULT_CLOSE_RST; /* after the reply */
        conn_end_gracefully(c, c->reset_at_end ? "fault: reset at connect" : "fault: refused at connect");
        conn_after_session(c);
        return 0;
    }
    if (a->close != FAULT_CLOSE_NONE) {
        if (a->close == FAULT_CLOSE_RST) {
            conn_close(c, "fault: reset at connect", 1);
        } else {
            conn_end_gracefully(c, "fault: closed at connect");
            conn_after_session(c);
        }
        return 0;
    }
    if (a->delay_ms > 0) {
        conn_timer_set(c, TIMER_START, a->delay_ms);
        update_reading(c); /* nothing is read yet, but a client leaving is noticed */
        return 0;
    }
    return 1;
}

void conn_accept(listener *l)
{
    server *srv = l->srv;
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_server(LOG_ERROR, "%s: out of memory accepting a connection", l->name);
        return;
    }
    /* Unbounded here: a batch is what the session answers to one read, a drip what it answers meanwhile. */
    bytebuf_init(&c->out, CONN_OUT_INITIAL, SIZE_MAX);
    bytebuf_init(&c->drip, CONN_OUT_INITIAL, SIZE_MAX);
    if (uv_tcp_init(srv->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->srv = srv;
    c->sc = l->sc;
    c->l = l;
    c->tcp.data = c;
    peer_watch_init(&c->watch, on_peer_gone);
    c->handles_open = 1;
    c->id = ++srv->next_session_id;
    c->started_ms = uv_now(srv->loop);
    c->started_wall_ms = wall_ms();
    LIST_INSERT_HEAD(&c->sc->conns, c, link);
    c->sc->nconns++;
    c->sc->sessions++;
    srv->nconns++;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open++;

    int r = uv_accept((uv_stream_t *)l->tcp, (uv_stream_t *)&c->tcp);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (r == 0)
        r = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
    if (r != 0) {
        conn_close(c, uv_strerror(r), 0);
        return;
    }
    fault_addr addr;
    format_peer(&ss, c->client, sizeof(c->client), &addr);
    story_track_start(&c->story, c->client, c->sc->id, c->id, c->started_wall_ms);
    uv_tcp_nodelay(&c->tcp, 1); /* replies are small and latency-bound */
    c->implicit_tls = l->implicit_tls;

    c->faults = fault_conn_new(c->sc->fault_run, l->name, &addr);
    session_info info = {c->id, c->client, l->name, c->faults};
    c->s = c->faults ? session_new(&l->cfg, &conn_host, c, &info) : NULL;
    if (c->s == NULL) {
        conn_close(c, "out of memory", 0);
        return;
    }
    conn_eventf(c, LOG_INFO, "connect", "%s on %s %s", c->client, l->name, l->bound);
    conn_timer_idle(c);
    if (connect_stage(c))
        start_session(c);
}

void conn_view(const conn *c, session_view *v)
{
    memset(v, 0, sizeof(*v));
    v->id = c->id;
    v->client = c->client;
    v->listener = c->l->name;
    v->state = c->phase != CONN_OPEN                                                      ? "closing"
               : c->hanging                                                               ? "hang"
               : c->tls.phase == TLS_PHASE_HANDSHAKE || c->tls.phase == TLS_PHASE_STALLED ? "tls handshake"
               : c->s != NULL ? session_state_name(c->s)
                              : "init";
    v->helo = c->s ? session_helo(c->s) : NULL;
    v->user = c->s ? session_user(c->s) : NULL;
    if (conn_tls_active(&c->tls)) {
        v->tls_version = tls_conn_version(c->tls.ssl);
        v->tls_cipher = tls_conn_cipher(c->tls.ssl);
    }
    v->started_ms = c->started_wall_ms;
    v->bytes_in = c->bytes_in;
    v->bytes_out = c->bytes_out;
    v->messages = c->messages;
    v->transcript = &c->transcript;
    v->findings = c->s ? session_findings(c->s) : NULL;
}

uint64_t conn_id(const conn *c)
{
    return c->id;
}

void conn_bytes(const conn *c, uint64_t *in, uint64_t *out)
{
    *in = c->bytes_in;
    *out = c->bytes_out;
}

void conn_shutdown(conn *c, int force)
{
    if (c->phase == CONN_CLOSED)
        return;
    if (c->phase != CONN_OPEN) {
        if (force)
            conn_close(c, "server shutdown", 0);
        return;
    }
    if (c->hanging || conn_tls_handshaking(&c->tls) ||
        (c->implicit_tls && c->tls.phase == TLS_PHASE_NONE && c->tls.ssl == NULL)) {
        conn_close(c, "server shutdown", 0); /* no session to drain yet */
        return;
    }
    c->drain_requested = 1;
    if (force)
        drip_finish(c);
    if (force && session_in_transaction(c->s)) {
        if (c->commit_pending) {
            conn_close(c, "server shutdown", 0);
            return;
        }
        session_shutdown(c->s);
    }
    conn_after_session(c);
}
