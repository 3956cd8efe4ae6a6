/*
 * peer_watch.h - notice that a client has gone (its FIN or RST) while its socket is not read.
 *
 * While a session waits (a fault's delay, a commit, a drip) the connection stops reading, so that input stays
 * in the kernel until the session can take it; without a read, libuv reports neither EOF nor a reset. The
 * watch polls a duplicate of the socket for a hang-up alone (EPOLLRDHUP, EPOLLHUP, EPOLLERR), consuming none
 * of the client's data. A duplicate, because libuv watches each descriptor through one handle only.
 */
#ifndef SMTPFAULT_PEER_WATCH_H
#define SMTPFAULT_PEER_WATCH_H

#include <uv.h>

/* peer_gone_cb - the client shut its side down or reset the connection (reset: an error was reported) */
typedef void (*peer_gone_cb)(void *ctx, int reset);

typedef struct peer_watch {
    uv_poll_t poll; /* its data is the owner's ctx, for the owner's close callback */
    uv_os_fd_t fd;  /* the duplicate, -1 before the first start */
    int active;
    peer_gone_cb gone;
} peer_watch;

/* peer_watch_init - an idle watch (no handle, no descriptor yet) */
void peer_watch_init(peer_watch *w, peer_gone_cb gone);

/* peer_watch_start - watch tcp's peer (idempotent); the handle is made on first use. 0, or a libuv error */
int peer_watch_start(peer_watch *w, uv_loop_t *loop, uv_tcp_t *tcp, void *ctx);

/* peer_watch_stop - stop watching (idempotent) */
void peer_watch_stop(peer_watch *w);

/* peer_watch_close - close the handle (cb is called as for any handle) and the duplicate; 0 when there was
 * no handle to close (cb is not called) */
int peer_watch_close(peer_watch *w, uv_close_cb cb);

#endif
