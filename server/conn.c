/*
 * conn.c - a client connection: socket I/O, idle timer, output buffering, commit of accepted messages,
 * and the one close path.
 *
 * Lifetime: conn_accept() allocates; conn_close() is the only way out and is idempotent; memory is freed
 * in on_handle_closed() once both handles are closed and no --store-dir write still refers to the
 * connection. A graceful end (QUIT, 421) shuts the write side down after the last reply and keeps reading
 * for a short linger period, so the client is not sent an RST while its last reply is in flight.
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "log.h"
#include "store_disk.h"

#define CONN_WRITE_QUEUE_MAX (256 * 1024) /* stop reading while this much output waits for the client */
#define CONN_LINGER_MS       2000         /* after our FIN, wait this long for the client's */
#define CONN_OUT_INITIAL     512          /* first output buffer; most batches are a reply or two */

typedef enum conn_phase {
    CONN_OPEN,      /* the session is talking */
    CONN_FLUSHING,  /* the session ended: write what is queued, then shut down */
    CONN_LINGERING, /* FIN sent: reading and discarding until the client's FIN or the linger timer */
    CONN_CLOSED,    /* handles closing */
} conn_phase;

struct conn {
    server *srv;
    listener *l;
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle timeout while open, linger timeout while lingering */
    uv_shutdown_t shutdown_req;
    session *s;
    conn *prev, *next;
    uint64_t id;
    conn_phase phase;
    int handles_open;
    int commit_pending; /* a --store-dir write refers to this connection */
    int reading;
    int drain_requested; /* the server is stopping: 421 once the transaction in flight ends */
    int eof;             /* the client shut its side down */
    const char *end_reason; /* why the session ended, for the close log line */
    char client[STORE_CLIENT_MAX];
    char *out; /* output of the current batch, handed to uv_write as is */
    size_t out_len, out_cap;
    uint64_t bytes_in, bytes_out;
    uint64_t started_ms;
};

typedef struct write_req {
    uv_write_t req;
    conn *c;
    char *data;
} write_req;

static void conn_close(conn *c, const char *reason);
static void after_session(conn *c);

conn *conn_next(conn *c)
{
    return c->next;
}

/* -- freeing -------------------------------------------------------------------------------------------- */

static void maybe_free(conn *c)
{
    if (c->handles_open > 0 || c->commit_pending)
        return;
    server *srv = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nconns--;
    session_free(c->s);
    free(c->out);
    free(c);
    server_conn_gone(srv);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    c->handles_open--;
    maybe_free(c);
}

/* conn_close - the one close path: idempotent; frees once every handle has closed */
static void conn_close(conn *c, const char *reason)
{
    if (c->phase == CONN_CLOSED)
        return;
    c->phase = CONN_CLOSED;
    char text[160];
    int n = snprintf(text, sizeof(text), "%s (in %llu bytes, out %llu bytes, %llu ms)", reason,
                     (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
                     (unsigned long long)(uv_now(c->srv->loop) - c->started_ms));
    log_session(LOG_INFO, c->id, "close", text, (size_t)n);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed); /* cancels queued writes: their callbacks free them */
}

/* -- output ----------------------------------------------------------------------------------------------- */

static void update_reading(conn *c);

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    conn *c = w->c;
    free(w->data);
    free(w);
    if (status < 0) {
        if (status != UV_ECANCELED)
            conn_close(c, status == UV_EPIPE || status == UV_ECONNRESET ? "client reset the connection"
                                                                        : "write failed");
        return;
    }
    if (c->phase == CONN_OPEN)
        update_reading(c); /* the queue may have drained below the limit */
}

/* flush - hand the batch's output to libuv; the buffer travels with the write request */
static void flush(conn *c)
{
    if (c->out_len == 0 || c->phase == CONN_CLOSED)
        return;
    write_req *w = malloc(sizeof(*w));
    if (w == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    w->c = c;
    w->data = c->out;
    uv_buf_t buf = uv_buf_init(c->out, (unsigned)c->out_len);
    c->bytes_out += c->out_len;
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (r != 0) {
        free(w->data);
        free(w);
        conn_close(c, "write failed");
    }
}

static void host_send(void *ctx, const char *data, size_t len)
{
    conn *c = ctx;
    if (c->phase == CONN_CLOSED)
        return;
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : CONN_OUT_INITIAL;
        while (cap < c->out_len + len)
            cap *= 2;
        char *out = realloc(c->out, cap);
        if (out == NULL) {
            conn_close(c, "out of memory");
            return;
        }
        c->out = out;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* -- graceful end ----------------------------------------------------------------------------------------- */

static void on_linger_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    conn_close(c, c->end_reason);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    if (c->phase == CONN_CLOSED)
        return;
    if (status < 0 || c->eof) {
        conn_close(c, status < 0 ? "shutdown failed" : c->end_reason);
        return;
    }
    /* Keep reading (and discarding) until the client's FIN, so unread input cannot turn our close into an
     * RST that destroys the reply the client has not read yet. */
    c->phase = CONN_LINGERING;
    uv_timer_start(&c->timer, on_linger_timeout, CONN_LINGER_MS, 0);
    update_reading(c);
}

static void host_close(void *ctx, const char *reason)
{
    conn *c = ctx;
    if (c->phase != CONN_OPEN)
        return;
    c->phase = CONN_FLUSHING;
    c->end_reason = reason;
}

/* -- commit --------------------------------------------------------------------------------------------- */

static void log_stored(conn *c, const store_msg *m)
{
    if (!log_enabled(LOG_INFO))
        return;
    char text[200];
    int n = snprintf(text, sizeof(text), "%s: %zu bytes, %zu recipient%s", m->id, m->size, m->nrcpts,
                     m->nrcpts == 1 ? "" : "s");
    log_session(LOG_INFO, c->id, "message", text, (size_t)n);
}

static void on_disk_done(void *ctx, store_msg *m, int status)
{
    conn *c = ctx;
    c->commit_pending = 0;
    if (status == 0) {
        store_add(&c->srv->store, m);
        log_stored(c, m);
    } else {
        log_server(LOG_ERROR, "cannot write message %s to %s: %s", m->id, c->srv->cfg->store_dir,
                   uv_strerror(status));
    }
    if (c->phase == CONN_CLOSED) {
        maybe_free(c);
        return;
    }
    session_commit_done(c->s, status == 0 ? m->id : NULL);
    after_session(c);
}

static void host_commit(void *ctx, store_msg *m)
{
    conn *c = ctx;
    server *srv = c->srv;
    store_assign_id(&srv->store, m);
    if (srv->cfg->store_dir == NULL) {
        store_add(&srv->store, m);
        log_stored(c, m);
        session_commit_done(c->s, m->id);
        store_msg_unref(m);
        return;
    }
    int r = store_disk_write(srv->loop, srv->cfg->store_dir, m, on_disk_done, c);
    if (r != 0) {
        log_server(LOG_ERROR, "cannot queue message %s for %s: %s", m->id, srv->cfg->store_dir, uv_strerror(r));
        session_commit_done(c->s, NULL);
    } else {
        c->commit_pending = 1;
    }
    store_msg_unref(m);
}

static const session_host conn_host = {host_send, host_close, host_commit};

/* -- input ------------------------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = h->data;
    *buf = uv_buf_init(c->srv->read_buf, sizeof(c->srv->read_buf));
}

static void on_idle_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    session_timeout(c->s);
    after_session(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = stream->data;
    if (nread == 0 || c->phase == CONN_CLOSED)
        return;
    if (nread < 0) {
        if (nread == UV_EOF) {
            c->eof = 1;
            if (c->phase == CONN_LINGERING) {
                conn_close(c, c->end_reason);
            } else if (c->phase == CONN_OPEN) {
                conn_close(c, session_in_transaction(c->s) ? "client closed the connection mid-transaction"
                                                           : "client closed the connection");
            } else {
                uv_read_stop(stream); /* FLUSHING: the shutdown callback closes */
                c->reading = 0;
            }
        } else {
            conn_close(c, nread == UV_ECONNRESET ? "client reset the connection" : uv_strerror((int)nread));
        }
        return;
    }
    c->bytes_in += (uint64_t)nread;
    if (c->phase != CONN_OPEN)
        return; /* lingering or flushing: input after the last reply is discarded */
    uv_timer_again(&c->timer);
    session_feed(c->s, buf->base, (size_t)nread);
    after_session(c);
}

/* update_reading - read only when the session takes input and the client reads its replies */
static void update_reading(conn *c)
{
    int want;
    if (c->phase == CONN_LINGERING)
        want = !c->eof;
    else
        want = c->phase == CONN_OPEN && !c->eof && session_wants_input(c->s) &&
               c->tcp.write_queue_size <= CONN_WRITE_QUEUE_MAX;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* after_session - after every call into the session: write its output, follow its wishes */
static void after_session(conn *c)
{
    if (c->phase == CONN_CLOSED)
        return;
    if (c->phase == CONN_OPEN && c->drain_requested && !session_in_transaction(c->s))
        session_shutdown(c->s);
    flush(c);
    if (c->phase == CONN_FLUSHING) {
        uv_timer_stop(&c->timer);
        c->shutdown_req.data = c;
        /* uv_shutdown waits for the queued writes, then sends FIN. */
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
            conn_close(c, "shutdown failed");
        else
            update_reading(c);
        return;
    }
    if (c->phase == CONN_OPEN)
        update_reading(c);
}

/* -- accept and stop ---------------------------------------------------------------------------------------- */

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t outsz)
{
    char host[64] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(out, outsz, "[%s]:%d", host, port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(out, outsz, "%s:%d", host, port);
    }
}

void conn_accept(listener *l)
{
    server *srv = l->srv;
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_server(LOG_ERROR, "%s: out of memory accepting a connection", l->name);
        return;
    }
    if (uv_tcp_init(srv->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->srv = srv;
    c->l = l;
    c->tcp.data = c;
    c->handles_open = 1;
    c->id = ++srv->next_session_id;
    c->started_ms = uv_now(srv->loop);
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open++;

    int r = uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (r == 0)
        r = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
    if (r != 0) {
        c->phase = CONN_OPEN;
        conn_close(c, uv_strerror(r));
        return;
    }
    format_peer(&ss, c->client, sizeof(c->client));
    uv_tcp_nodelay(&c->tcp, 1); /* replies are small and latency-bound */

    session_info info = {c->id, c->client, l->name};
    c->s = session_new(&srv->session_cfg, &conn_host, c, &info);
    if (c->s == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    if (log_enabled(LOG_INFO)) {
        char text[200];
        int n = snprintf(text, sizeof(text), "%s on %s %s", c->client, l->name, l->bound);
        log_session(LOG_INFO, c->id, "connect", text, (size_t)n);
    }
    uint64_t idle_ms = (uint64_t)srv->cfg->idle_timeout_s * 1000;
    uv_timer_start(&c->timer, on_idle_timeout, idle_ms, idle_ms);
    session_start(c->s);
    after_session(c);
}

void conn_shutdown(conn *c, int force)
{
    if (c->phase == CONN_CLOSED)
        return;
    if (c->phase != CONN_OPEN) {
        if (force)
            conn_close(c, "server shutdown");
        return;
    }
    c->drain_requested = 1;
    if (force && session_in_transaction(c->s)) {
        if (c->commit_pending) {
            conn_close(c, "server shutdown");
            return;
        }
        session_shutdown(c->s);
    }
    after_session(c);
}
