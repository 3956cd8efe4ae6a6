/*
 * listener.c - TCP listeners (IPv4 and IPv6), and their refuse and blackhole modes.
 *
 * Refuse closes the listening socket: the kernel answers a SYN to a closed port with an RST, so clients
 * see ECONNREFUSED. Blackhole listens with a backlog of 0 and never accepts, and fills that backlog with
 * a connection of our own: Linux then drops every new SYN (the accept queue is full), the client
 * retransmits and its connect() times out, exactly as behind a firewall that drops packets. libuv has no
 * "listen but never accept" (uv_listen always polls and accepts), so that one socket gets listen(2) on
 * its descriptor directly; everything else about it is libuv's.
 */
#include "listener.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>

#include "conn.h"
#include "log.h"

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/*
 * refuse_busy - at the connection limit: accept, answer 421 and close, so that the client knows at once
 * (rather than waiting in the backlog for a connect timeout) and retries later, as RFC 5321 3.8 expects.
 */
static void refuse_busy(listener *l, uv_stream_t *stream)
{
    server *srv = l->srv;
    uv_tcp_t *h = malloc(sizeof(*h));
    if (h == NULL || uv_tcp_init(srv->loop, h) != 0) {
        free(h);
        return;
    }
    if (uv_accept(stream, (uv_stream_t *)h) == 0) {
        char text[320];
        int n = snprintf(text, sizeof(text), "421 4.7.0 %s Error: too many connections, try again later\r\n",
                         srv->cfg->hostname);
        uv_buf_t buf = uv_buf_init(text, (unsigned)n);
        (void)uv_try_write((uv_stream_t *)h, &buf, 1); /* a fresh socket's buffer takes it whole */
        srv->refused++;
        log_server(LOG_INFO, "%s listener: %zu connections live, the limit: answered 421 and closed", l->name,
                   srv->nconns);
    }
    uv_close((uv_handle_t *)h, free_handle);
}

static void on_connection(uv_stream_t *stream, int status)
{
    listener *l = stream->data;
    if (status < 0) {
        log_server(LOG_WARN, "%s listener: accept failed: %s", l->name, uv_strerror(status));
        return;
    }
    if (l->srv->nconns >= server_conn_room(l->srv)) {
        refuse_busy(l, stream);
        return;
    }
    conn_accept(l);
}

static void close_handle(uv_tcp_t **h)
{
    if (*h == NULL)
        return;
    uv_close((uv_handle_t *)*h, free_handle); /* the descriptor is closed now, the memory in the callback */
    *h = NULL;
}

static int sockaddr_of(const char *host, int port, struct sockaddr_storage *ss)
{
    return strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss)
                             : uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

/* bind_new - a new TCP handle bound to host:port; NULL with a libuv error in *r */
static uv_tcp_t *bind_new(listener *l, const char *host, int port, int *r)
{
    struct sockaddr_storage ss;
    *r = sockaddr_of(host, port, &ss);
    if (*r != 0)
        return NULL;
    uv_tcp_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        *r = UV_ENOMEM;
        return NULL;
    }
    *r = uv_tcp_init(l->srv->loop, h);
    if (*r != 0) {
        free(h);
        return NULL;
    }
    h->data = l;
    /* An IPv6 listener serves IPv6 only, so that 0.0.0.0 and :: can be bound side by side. */
    *r = uv_tcp_bind(h, (const struct sockaddr *)&ss, strchr(host, ':') ? UV_TCP_IPV6ONLY : 0);
    if (*r != 0) {
        close_handle(&h);
        return NULL;
    }
    return h;
}

/* start_accepting - the normal mode's socket */
static int start_accepting(listener *l, const char *host, int port)
{
    int r;
    l->tcp = bind_new(l, host, port, &r);
    if (l->tcp != NULL && (r = uv_listen((uv_stream_t *)l->tcp, LISTENER_BACKLOG, on_connection)) != 0)
        close_handle(&l->tcp);
    return r;
}

static void on_filler_connected(uv_connect_t *req, int status)
{
    (void)
        status; /* connected (the backlog is full) or cancelled by the end of the blackhole: nothing to do */
    free(req);
}

/* start_blackhole - a socket that listens and never accepts, its one-slot backlog filled by us */
static int start_blackhole(listener *l)
{
    int r;
    l->hole = bind_new(l, l->host, l->port, &r);
    if (l->hole == NULL)
        return r;
    uv_os_fd_t fd;
    r = uv_fileno((uv_handle_t *)l->hole, &fd);
    if (r == 0 && listen(fd, 0) != 0)
        r = uv_translate_sys_error(errno);
    if (r == 0) {
        struct sockaddr_storage ss;
        uv_connect_t *req = malloc(sizeof(*req));
        l->hole_filler = malloc(sizeof(*l->hole_filler));
        if (req == NULL || l->hole_filler == NULL) {
            free(req);
            free(l->hole_filler);
            l->hole_filler = NULL;
            r = UV_ENOMEM;
        } else if ((r = uv_tcp_init(l->srv->loop, l->hole_filler)) != 0) {
            free(req);
            free(l->hole_filler);
            l->hole_filler = NULL;
        } else if ((r = sockaddr_of(l->host, l->port, &ss)) != 0 ||
                   (r = uv_tcp_connect(req, l->hole_filler, (const struct sockaddr *)&ss,
                                       on_filler_connected)) != 0) {
            free(req);
            close_handle(&l->hole_filler);
        }
    }
    if (r != 0) {
        close_handle(&l->hole_filler);
        close_handle(&l->hole);
    }
    return r;
}

static const char *const mode_names[] = {"accepting connections", "refusing connections (ECONNREFUSED)",
                                         "blackholing connections (connect() times out)"};

int listener_set_mode(listener *l, listener_mode mode)
{
    if (!l->open || l->mode == mode)
        return 0;
    close_handle(&l->tcp);
    close_handle(&l->hole_filler);
    close_handle(&l->hole);
    int r = 0;
    if (mode == LISTENER_ACCEPT)
        r = start_accepting(l, l->host, l->port);
    else if (mode == LISTENER_BLACKHOLE)
        r = start_blackhole(l);
    if (r != 0) {
        log_server(LOG_ERROR, "%s listener on %s: cannot switch to %s: %s", l->name, l->bound,
                   mode_names[mode], uv_strerror(r));
        l->mode = LISTENER_REFUSE; /* nothing listens now */
        return -1;
    }
    l->mode = mode;
    log_server(LOG_INFO, "%s listener on %s: %s", l->name, l->bound, mode_names[mode]);
    return 0;
}

int listener_open(listener *l, scope *sc, listener_kind kind, const listen_addr *addr, char *err,
                  size_t errsz)
{
    memset(l, 0, sizeof(*l));
    l->srv = sc->srv;
    l->sc = sc;
    l->kind = kind;
    l->name = config_listener_name(kind);
    int v6 = strchr(addr->host, ':') != NULL;
    int r = start_accepting(l, addr->host, addr->port);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (r == 0)
        r = uv_tcp_getsockname(l->tcp, (struct sockaddr *)&ss, &len);
    if (r != 0) {
        snprintf(err, errsz, "cannot listen on %s%s%s:%d (%s): %s", v6 ? "[" : "", addr->host, v6 ? "]" : "",
                 addr->port, l->name, uv_strerror(r));
        close_handle(&l->tcp);
        return r;
    }
    l->open = 1;
    l->mode = LISTENER_ACCEPT;
    snprintf(l->host, sizeof(l->host), "%s", addr->host);
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(l->bound, sizeof(l->bound), "%s%s%s:%d", v6 ? "[" : "", l->host, v6 ? "]" : "", l->port);
    return 0;
}

void listener_close(listener *l)
{
    if (!l->open)
        return;
    l->open = 0;
    close_handle(&l->tcp);
    close_handle(&l->hole_filler);
    close_handle(&l->hole);
}
