/*
 * server.c - start-up (listeners, ports file), signals and the graceful stop.
 */
#include "server.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "store_disk.h"

/* write_ports_file - {"smtp": {"host": ..., "port": ...}, ...} for every open listener, atomically */
static int write_ports_file(server *srv, const char *path)
{
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; root != NULL && i < LISTENER_COUNT; i++) {
        listener *l = &srv->listeners[i];
        if (!l->open)
            continue;
        cJSON *o = cJSON_AddObjectToObject(root, l->name);
        cJSON_AddStringToObject(o, "host", l->host);
        cJSON_AddNumberToObject(o, "port", l->port);
        cJSON_AddStringToObject(o, "address", l->bound);
    }
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (text == NULL)
        return UV_ENOMEM;

    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    uv_fs_t req;
    int fd = uv_fs_open(NULL, &req, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, NULL);
    uv_fs_req_cleanup(&req);
    int r = fd;
    if (fd >= 0) {
        size_t len = strlen(text);
        text[len] = '\n'; /* replaces the NUL; the length says where the text ends */
        uv_buf_t buf = uv_buf_init(text, (unsigned)len + 1);
        r = uv_fs_write(NULL, &req, fd, &buf, 1, 0, NULL);
        uv_fs_req_cleanup(&req);
        uv_fs_close(NULL, &req, fd, NULL);
        uv_fs_req_cleanup(&req);
        if (r >= 0) {
            r = uv_fs_rename(NULL, &req, tmp, path, NULL);
            uv_fs_req_cleanup(&req);
        }
    }
    cJSON_free(text);
    return r < 0 ? r : 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server *srv = sig->data;
    log_server(LOG_INFO, "received %s: %s", signum == SIGINT ? "SIGINT" : "SIGTERM",
               srv->stopping ? "closing every connection now" : "stopping (send again to stop at once)");
    server_stop(srv);
}

static void on_drain_timeout(uv_timer_t *t)
{
    server *srv = t->data;
    log_server(LOG_INFO, "drain period over: closing %zu connection%s", srv->nconns, srv->nconns == 1 ? "" : "s");
    server_stop(srv);
}

/* finish - the last connection is gone while stopping: close what keeps the loop alive */
static void finish(server *srv)
{
    if (uv_is_closing((uv_handle_t *)&srv->drain))
        return;
    uv_close((uv_handle_t *)&srv->drain, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    log_server(LOG_INFO, "stopped: %llu messages accepted, %llu evicted", (unsigned long long)srv->store.accepted,
               (unsigned long long)srv->store.evicted);
}

void server_conn_gone(server *srv)
{
    if (srv->stopping && srv->nconns == 0)
        finish(srv);
}

void server_stop(server *srv)
{
    int force = srv->stopping > 0;
    srv->stopping = force ? 2 : 1;
    for (int i = 0; i < LISTENER_COUNT; i++)
        listener_close(&srv->listeners[i]);
    /* Iterate with the next pointer saved: a connection may free itself synchronously. */
    for (conn *c = srv->conns, *next; c != NULL; c = next) {
        next = conn_next(c);
        conn_shutdown(c, force);
    }
    if (srv->nconns == 0) {
        finish(srv);
        return;
    }
    if (!force)
        uv_timer_start(&srv->drain, on_drain_timeout, (uint64_t)srv->cfg->drain_timeout_s * 1000, 0);
}

int server_start(server *srv, uv_loop_t *loop, const config *cfg)
{
    srv->loop = loop;
    srv->cfg = cfg;
    srv->session_cfg.hostname = cfg->hostname;
    srv->session_cfg.max_message_size = cfg->max_message_size;
    srv->session_cfg.max_recipients = cfg->max_recipients;
    srv->session_cfg.max_errors = cfg->max_errors;

    /* Ids: start time and 16 random bits, then a counter, so runs sharing a --store-dir never collide. */
    unsigned char rnd[2] = {0, 0};
    (void)uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL);
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%08llX%02X%02X", (unsigned long long)time(NULL) & 0xFFFFFFFFull, rnd[0],
             rnd[1]);
    store_init(&srv->store, cfg->store_max_messages, cfg->store_max_bytes, prefix);

    uv_timer_init(loop, &srv->drain);
    srv->drain.data = srv;
    uv_signal_init(loop, &srv->sigterm);
    uv_signal_init(loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;

    if (cfg->store_dir != NULL) {
        int r = store_disk_prepare(loop, cfg->store_dir);
        if (r != 0) {
            log_server(LOG_ERROR, "--store-dir %s: %s", cfg->store_dir, uv_strerror(r));
            goto fail;
        }
    }
    int any = 0;
    for (int i = 0; i < LISTENER_COUNT; i++) {
        if (!cfg->listen[i].enabled)
            continue;
        char err[256];
        if (listener_open(&srv->listeners[i], srv, (listener_kind)i, &cfg->listen[i], err, sizeof(err)) != 0) {
            log_server(LOG_ERROR, "%s", err);
            goto fail;
        }
        log_server(LOG_INFO, "listening for %s on %s", srv->listeners[i].name, srv->listeners[i].bound);
        any = 1;
    }
    if (!any) {
        log_server(LOG_ERROR, "every listener is off: nothing to serve");
        goto fail;
    }
    if (cfg->ports_file != NULL) {
        int r = write_ports_file(srv, cfg->ports_file);
        if (r != 0) {
            log_server(LOG_ERROR, "--ports-file %s: %s", cfg->ports_file, uv_strerror(r));
            goto fail;
        }
    }
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    return 0;

fail:
    for (int i = 0; i < LISTENER_COUNT; i++)
        listener_close(&srv->listeners[i]);
    finish(srv);
    return -1;
}

void server_free(server *srv)
{
    store_free(&srv->store);
}
