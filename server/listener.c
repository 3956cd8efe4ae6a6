/*
 * listener.c - TCP listeners (IPv4 and IPv6).
 */
#include "listener.h"

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "log.h"

static void on_connection(uv_stream_t *stream, int status)
{
    listener *l = stream->data;
    if (status < 0) {
        log_server(LOG_WARN, "%s listener: accept failed: %s", l->name, uv_strerror(status));
        return;
    }
    conn_accept(l);
}

int listener_open(listener *l, server *srv, listener_kind kind, const listen_addr *addr, char *err, size_t errsz)
{
    memset(l, 0, sizeof(*l));
    l->srv = srv;
    l->kind = kind;
    l->name = config_listener_name(kind);

    struct sockaddr_storage ss;
    int r = strchr(addr->host, ':') ? uv_ip6_addr(addr->host, addr->port, (struct sockaddr_in6 *)&ss)
                                    : uv_ip4_addr(addr->host, addr->port, (struct sockaddr_in *)&ss);
    if (r == 0)
        r = uv_tcp_init(srv->loop, &l->tcp);
    if (r != 0) {
        snprintf(err, errsz, "%s listener: %s", l->name, uv_strerror(r));
        return -1;
    }
    l->open = 1;
    l->tcp.data = l;
    /* An IPv6 listener serves IPv6 only, so that 0.0.0.0 and :: can be bound side by side. */
    r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, strchr(addr->host, ':') ? UV_TCP_IPV6ONLY : 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, LISTENER_BACKLOG, on_connection);
    if (r == 0) {
        int len = sizeof(ss);
        r = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    }
    if (r != 0) {
        snprintf(err, errsz, "cannot listen on %s%s%s:%d (%s): %s", strchr(addr->host, ':') ? "[" : "", addr->host,
                 strchr(addr->host, ':') ? "]" : "", addr->port, l->name, uv_strerror(r));
        listener_close(l);
        return -1;
    }
    snprintf(l->host, sizeof(l->host), "%s", addr->host);
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(l->bound, sizeof(l->bound), "%s%s%s:%d", ss.ss_family == AF_INET6 ? "[" : "", l->host,
             ss.ss_family == AF_INET6 ? "]" : "", l->port);
    return 0;
}

void listener_close(listener *l)
{
    if (!l->open)
        return;
    l->open = 0;
    uv_close((uv_handle_t *)&l->tcp, NULL); /* the handle lives inside the server: nothing to free */
}
