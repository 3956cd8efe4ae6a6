/*
 * fuzz_admin.c - arbitrary bytes on the admin socket of a whole server running in-process.
 *
 * One server (no TLS, one SMTP listener on an ephemeral port, the admin socket on a unix socket) lives
 * for the whole run. Each input is sent on a new admin connection, followed by a ping with a known id (an
 * NDJSON line, or an HTTP request when the input starts as one does, with an upper-case letter);
 * the iteration ends when that ping's answer arrives (every request before it was answered, in order) or
 * after a short deadline (the input opened a messages.wait). Requests may do anything an admin client
 * can: load profiles, clear messages, reset. The server must answer, and never crash or leak.
 */
#define _GNU_SOURCE /* memmem */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "fault.h"
#include "log.h"
#include "server.h"

#define SYNC_LINE "\n{\"cmd\": \"ping\", \"id\": \"fuzz-sync\"}\n"
#define SYNC_HTTP                                                               \
    "\r\n\r\nPOST /api/v1/ping HTTP/1.1\r\nHost: localhost\r\nContent-Length: " \
    "18\r\n\r\n{\"id\":\"fuzz-sync\"}"
#define DEADLINE_MS 50 /* the server answers in microseconds; a messages.wait is cut short */

static uv_loop_t loop;
static config cfg;
static server *srv;
static char sock_path[80];

typedef struct client {
    uv_pipe_t pipe;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t deadline;
    uv_buf_t out[2];
    char *seen; /* the tail of what the server sent, to find the sync answer across reads */
    size_t seen_len;
    int open_handles;
    int done;
} client;

static void on_closed(uv_handle_t *h)
{
    client *c = h->data;
    c->open_handles--;
}

static void finish(client *c)
{
    if (c->done)
        return;
    c->done = 1;
    uv_close((uv_handle_t *)&c->pipe, on_closed);
    uv_close((uv_handle_t *)&c->deadline, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *c = s->data;
    if (n < 0) {
        finish(c);
    } else if (n > 0) {
        /* keep the last 64 bytes and the new ones: the marker may straddle two reads */
        size_t keep = c->seen_len > 64 ? 64 : c->seen_len;
        char *joined = malloc(keep + (size_t)n + 1);
        if (joined != NULL) {
            if (keep > 0)
                memcpy(joined, c->seen + c->seen_len - keep, keep);
            memcpy(joined + keep, buf->base, (size_t)n);
            joined[keep + (size_t)n] = '\0';
            free(c->seen);
            c->seen = joined;
            c->seen_len = keep + (size_t)n;
            if (memmem(joined, c->seen_len, "\"fuzz-sync\"", 11) != NULL)
                finish(c);
        }
    }
    free(buf->base);
}

static void on_written(uv_write_t *w, int status)
{
    (void)w, (void)status;
}

static void on_connected(uv_connect_t *req, int status)
{
    client *c = req->data;
    if (status < 0) {
        finish(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    uv_write(&c->write, (uv_stream_t *)&c->pipe, c->out, 2, on_written);
}

static void on_deadline(uv_timer_t *t)
{
    finish(t->data);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[200];
    signal(SIGPIPE, SIG_IGN); /* as main() does: a client that went away is a write error, not a signal */
    config_defaults(&cfg);
    log_setup(stderr, LOG_FORMAT_TEXT, LOG_ERROR);
    cfg.log_level = LOG_ERROR;
    cfg.no_tls = 1;
    cfg.store_max_messages = 100;
    cfg.max_scopes = 8; /* kept scopes outlive their input: bounded, and past it scope.create is refused */
    (void)config_parse_addr("127.0.0.1:0", &cfg.listen[LISTENER_SMTP], err, sizeof(err));
    (void)config_parse_addr("off", &cfg.listen[LISTENER_SUBMISSION], err, sizeof(err));
    (void)config_parse_addr("off", &cfg.listen[LISTENER_SMTPS], err, sizeof(err));
    snprintf(sock_path, sizeof(sock_path), "unix:/tmp/smtpfault-fuzz-admin-%d.sock", (int)getpid());
    if (config_add_admin(&cfg, sock_path, err, sizeof(err)) != 0)
        abort();
    uv_loop_init(&loop);
    srv = calloc(1, sizeof(*srv));
    fault_profile *p = fault_profile_default();
    if (srv == NULL || p == NULL || server_start(srv, &loop, &cfg, p) != 0)
        abort();
    fault_profile_unref(p);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    client c;
    memset(&c, 0, sizeof(c));
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    c.out[0] = uv_buf_init(copy, (unsigned)size);
    if (size > 0 && data[0] >= 'A' && data[0] <= 'Z')
        c.out[1] = uv_buf_init((char *)SYNC_HTTP, sizeof(SYNC_HTTP) - 1);
    else
        c.out[1] = uv_buf_init((char *)SYNC_LINE, sizeof(SYNC_LINE) - 1);
    uv_pipe_init(&loop, &c.pipe, 0);
    uv_timer_init(&loop, &c.deadline);
    c.pipe.data = c.deadline.data = c.connect.data = &c;
    c.open_handles = 2;
    uv_timer_start(&c.deadline, on_deadline, DEADLINE_MS, 0);
    uv_pipe_connect(&c.connect, &c.pipe, sock_path + 5, on_connected);
    while (c.open_handles > 0)
        uv_run(&loop, UV_RUN_ONCE);
    free(copy);
    free(c.seen);
    return 0;
}
