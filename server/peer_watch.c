/*
 * peer_watch.c - a hang-up watch on a duplicate of a client's socket (see peer_watch.h).
 */
#include "peer_watch.h"

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

static peer_watch *watch_of(uv_poll_t *p)
{
    return (peer_watch *)((char *)p - offsetof(peer_watch, poll));
}

void peer_watch_init(peer_watch *w, peer_gone_cb gone)
{
    w->fd = -1;
    w->active = 0;
    w->gone = gone;
}

/* on_poll - only a hang-up was asked for: any event (or error) means the client has gone */
static void on_poll(uv_poll_t *p, int status, int events)
{
    peer_watch *w = watch_of(p);
    peer_watch_stop(w);
    /* libuv reports EPOLLERR (a reset) as a failed poll; a FIN alone as UV_DISCONNECT */
    w->gone(p->data, status < 0 || (events & UV_DISCONNECT) == 0);
}

int peer_watch_start(peer_watch *w, uv_loop_t *loop, uv_tcp_t *tcp, void *ctx)
{
    if (w->active)
        return 0;
    if (w->fd < 0) {
        uv_os_fd_t fd;
        int r = uv_fileno((uv_handle_t *)tcp, &fd);
        if (r != 0)
            return r;
        w->fd = dup(fd);
        if (w->fd < 0)
            return uv_translate_sys_error(errno);
        r = uv_poll_init(loop, &w->poll, w->fd);
        if (r != 0) {
            close(w->fd);
            w->fd = -1;
            return r;
        }
        w->poll.data = ctx;
    }
    int r = uv_poll_start(&w->poll, UV_DISCONNECT, on_poll);
    w->active = r == 0;
    return r;
}

void peer_watch_stop(peer_watch *w)
{
    if (!w->active)
        return;
    uv_poll_stop(&w->poll);
    w->active = 0;
}

int peer_watch_close(peer_watch *w, uv_close_cb cb)
{
    if (w->fd < 0)
        return 0;
    w->active = 0;
    uv_close((uv_handle_t *)&w->poll, cb); /* stops the poll at once: the descriptor may go */
    close(w->fd);
    w->fd = -1;
    return 1;
}
