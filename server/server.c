/*
 * server.c - start-up (TLS, profile, listeners, ports file), profile swaps, signals and the graceful stop.
 */
#include "server.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cJSON.h>

#include "admin.h"
#include "conn.h"
#include "fsutil.h"
#include "listener.h"
#include "log.h"
#include "store_disk.h"

/* write_ports_file - {"smtp": {"host": ..., "port": ...}, ...} for every open listener, atomically */
static int write_ports_file(server *srv, const char *path)
{
    cJSON *root = cJSON_CreateObject();
    if (root != NULL) {
        scope_listeners_json(&srv->own, root);
        admin_ports_json(srv->admin, root);
    }
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (text == NULL)
        return UV_ENOMEM;

    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL; the length says where the text ends */
    int r = fsutil_write(path, text, len + 1, 0644, 0);
    cJSON_free(text);
    return r < 0 ? r : 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server *srv = sig->data;
    log_server(LOG_INFO, "received %s: %s",
               signum == SIGINT   ? "SIGINT"
               : signum == SIGHUP ? "SIGHUP"
                                  : "SIGTERM",
               srv->stopping ? "closing every connection now" : "stopping (send again to stop at once)");
    server_stop(srv);
}

/* on_sigusr1 - one line of counters in the log; the server goes on as before */
static void on_sigusr1(uv_signal_t *sig, int signum)
{
    (void)signum;
    server *srv = sig->data;
    log_server(LOG_INFO,
               "received SIGUSR1: %zu connection%s live, %llu in total; %llu messages accepted, %zu kept "
               "(%llu bytes), %llu evicted",
               srv->nconns, srv->nconns == 1 ? "" : "s", (unsigned long long)srv->next_session_id,
               (unsigned long long)srv->own.store.accepted, srv->own.store.count,
               (unsigned long long)srv->own.store.bytes, (unsigned long long)srv->own.store.evicted);
    if (srv->nscopes > 0)
        log_server(LOG_INFO, "%zu scope%s alive; every scope's messages: %zu kept (%llu bytes)", srv->nscopes,
                   srv->nscopes == 1 ? "" : "s", srv->messages.count,
                   (unsigned long long)srv->messages.bytes);
}

static void on_drain_timeout(uv_timer_t *t)
{
    server *srv = t->data;
    log_server(LOG_INFO, "drain period over: closing %zu connection%s", srv->nconns,
               srv->nconns == 1 ? "" : "s");
    server_stop(srv);
}

/* finish - the last connection is gone while stopping: close what keeps the loop alive */
static void finish(server *srv)
{
    if (uv_is_closing((uv_handle_t *)&srv->drain))
        return;
    admin_stop(srv->admin); /* ends the scopes their admin connections created */
    while (!TAILQ_EMPTY(&srv->scopes))
        scope_end(TAILQ_FIRST(&srv->scopes), "the server stopped");
    uv_close((uv_handle_t *)&srv->drain, NULL);
    uv_close((uv_handle_t *)&srv->own.modes, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sighup, NULL);
    uv_close((uv_handle_t *)&srv->sigusr1, NULL);
    /* libuv gives a closed handle's signal back to its default action, death: one more SIGTERM while the
     * loop winds down (a second `docker stop`, a test's teardown) must not turn a clean stop into a kill. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    log_server(LOG_INFO, "stopped: %llu messages accepted, %llu evicted",
               (unsigned long long)srv->own.store.accepted, (unsigned long long)srv->own.store.evicted);
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
    scope_close_listeners(&srv->own);
    scope *sc;
    TAILQ_FOREACH(sc, &srv->scopes, link) {
        scope_close_listeners(sc);
        uv_timer_stop(&sc->modes);
    }
    uv_timer_stop(&srv->own.modes);
    if (srv->ports_written) { /* nothing listens there any more: a stale file would say otherwise */
        uv_fs_t req;
        uv_fs_unlink(NULL, &req, srv->cfg->ports_file, NULL);
        uv_fs_req_cleanup(&req);
        srv->ports_written = 0;
    }
    scope_shutdown_conns(&srv->own, force);
    TAILQ_FOREACH(sc, &srv->scopes, link)
        scope_shutdown_conns(sc, force);
    /* The next one saved: a scope whose last connection goes leaves this list (scope.c's finish). */
    scope *next;
    for (sc = TAILQ_FIRST(&srv->ended); sc != NULL; sc = next) {
        next = TAILQ_NEXT(sc, link);
        scope_shutdown_conns(sc, force);
    }
    if (srv->nconns == 0) {
        finish(srv);
        return;
    }
    if (!force)
        uv_timer_start(&srv->drain, on_drain_timeout, (uint64_t)srv->cfg->drain_timeout_s * 1000, 0);
}

int64_t server_now_ms(void)
{
    return (int64_t)(uv_hrtime() / 1000000);
}

/* open_fds - descriptors open now (those in /proc/self/fd), or -1 when that cannot be read */
static long open_fds(void)
{
    uv_fs_t req;
    int n = uv_fs_scandir(NULL, &req, "/proc/self/fd", 0, NULL);
    uv_fs_req_cleanup(&req);
    return n < 0 ? -1 : (long)n - 1; /* less the one scandir itself held */
}

/*
 * limit_connections - the descriptor budget: what RLIMIT_NOFILE leaves once SERVER_FD_RESERVE descriptors are
 * kept for the admin socket and the store whatever SMTP clients do; SMTP connections (SERVER_FDS_PER_CONN
 * each) and scopes (SCOPE_FDS_MAX each) share it as they come. --max-connections is lowered to fit it.
 * 0, or -1 when no connection would be left.
 */
static int limit_connections(server *srv)
{
    srv->conn_limit = srv->cfg->max_connections;
    srv->fd_budget = SIZE_MAX;
    struct rlimit rl;
    long used = open_fds();
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || used < 0)
        return 0;
    rlim_t keep = (rlim_t)used + SERVER_FD_RESERVE;
    if (rl.rlim_cur < keep + SERVER_FDS_PER_CONN) {
        log_server(LOG_ERROR,
                   "RLIMIT_NOFILE is %llu: with %ld descriptors open and %d kept in reserve, none is left "
                   "for SMTP connections (raise ulimit -n)",
                   (unsigned long long)rl.rlim_cur, used, SERVER_FD_RESERVE);
        return -1;
    }
    srv->fd_budget = (size_t)(rl.rlim_cur - keep);
    if (srv->fd_budget / SERVER_FDS_PER_CONN < srv->conn_limit) {
        srv->conn_limit = srv->fd_budget / SERVER_FDS_PER_CONN;
        log_server(
            LOG_INFO,
            "at most %zu SMTP connections (RLIMIT_NOFILE %llu, %ld descriptors open, %d kept in reserve); "
            "each scope takes %d of their descriptors",
            srv->conn_limit, (unsigned long long)rl.rlim_cur, used, SERVER_FD_RESERVE, SCOPE_FDS_MAX);
    }
    return 0;
}

size_t server_conn_room(const server *srv)
{
    if (srv->fd_budget == SIZE_MAX)
        return srv->conn_limit;
    size_t left =
        srv->fd_budget > srv->scope_fds ? (srv->fd_budget - srv->scope_fds) / SERVER_FDS_PER_CONN : 0;
    return left < srv->conn_limit ? left : srv->conn_limit;
}

/* setup_tls - the test PKI (loaded, or generated and maybe written) and the TLS contexts; 0 or -1 */
static int setup_tls(server *srv, const config *cfg)
{
    cert_set cs;
    char err[300];
    int r = 1;
    if (cfg->certs_dir != NULL && (r = cert_set_load(&cs, cfg->certs_dir, err, sizeof(err))) < 0) {
        log_server(LOG_ERROR, "--certs-dir %s: %s", cfg->certs_dir, err);
        return -1;
    }
    if (r == 1) {
        if (cert_set_generate(&cs, cfg->hostname, err, sizeof(err)) != 0) {
            log_server(LOG_ERROR, "TLS: %s", err);
            return -1;
        }
        if (cfg->certs_dir != NULL && cert_set_write(&cs, cfg->certs_dir, err, sizeof(err)) != 0) {
            log_server(LOG_ERROR, "--certs-dir %s: %s", cfg->certs_dir, err);
            cert_set_free(&cs);
            return -1;
        }
    }
    if (cfg->cert_file != NULL && cert_set_use(&cs, cfg->cert_file, cfg->key_file, err, sizeof(err)) != 0) {
        log_server(LOG_ERROR, "--cert/--key: %s", err);
        cert_set_free(&cs);
        return -1;
    }
    srv->tls = tls_server_new(&cs, err, sizeof(err));
    cert_set_free(&cs);
    if (srv->tls == NULL) {
        log_server(LOG_ERROR, "TLS: %s%s", err, cfg->cert_file ? " (check --cert and --key)" : "");
        return -1;
    }
    if (cfg->cert_file != NULL)
        log_server(LOG_INFO, "TLS: certificate %s", cfg->cert_file);
    else if (cfg->certs_dir != NULL)
        log_server(LOG_INFO, "TLS: test PKI in %s (clients trust %s/ca.pem)", cfg->certs_dir, cfg->certs_dir);
    else
        log_server(LOG_INFO,
                   "TLS: generated a test CA and certificate for %s (use --certs-dir DIR to give clients "
                   "its ca.pem)",
                   cfg->hostname);
    return 0;
}

/* listener_config - what sessions on listener kind start from */
static void listener_config(server *srv, const config *cfg, listener_kind kind, listener *l)
{
    const listener_policy *p = config_listener_policy(kind);
    session_config *sc = &l->cfg;
    sc->hostname = cfg->hostname;
    sc->max_message_size = cfg->max_message_size;
    sc->max_recipients = cfg->max_recipients;
    sc->max_errors = cfg->max_errors;
    sc->starttls = p->starttls && srv->tls != NULL;
    sc->tls_required = p->tls_required && srv->tls != NULL;
    sc->auth_required = p->auth_required;
    sc->auth_mechs = SASL_ALL_MECHS;
    sc->users.names = cfg->user_names;
    sc->users.passwords = cfg->user_passwords;
    sc->users.n = cfg->nusers;
    sc->inflight = &srv->inflight;
    l->implicit_tls = p->implicit_tls;
}

int server_start(server *srv, uv_loop_t *loop, const config *cfg, fault_profile *profile)
{
    TAILQ_INIT(&srv->scopes);
    TAILQ_INIT(&srv->ended);
    srv->loop = loop;
    srv->cfg = cfg;

    /* Ids: start time and 16 random bits, then a counter, so runs sharing a --store-dir never collide. */
    unsigned char rnd[2] = {0, 0};
    (void)uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL);
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%08llX%02X%02X", (unsigned long long)time(NULL) & 0xFFFFFFFFull, rnd[0],
             rnd[1]);
    store_pool_init(&srv->messages, cfg->store_max_messages, cfg->store_max_bytes, prefix);
    sessions_pool_init(&srv->closed);
    client_stories_init(&srv->stories);

    uv_timer_init(loop, &srv->drain);
    srv->drain.data = srv;
    uv_signal_init(loop, &srv->sigterm);
    uv_signal_init(loop, &srv->sigint);
    uv_signal_init(loop, &srv->sighup);
    uv_signal_init(loop, &srv->sigusr1);
    srv->sigterm.data = srv->sigint.data = srv->sighup.data = srv->sigusr1.data = srv;

    srv->started_ms = server_now_ms();
    srv->inflight.max = cfg->max_inflight_bytes;
    if (scope_init(&srv->own, srv, "", profile) != 0) {
        log_server(LOG_ERROR, "out of memory");
        goto fail;
    }
    if (!cfg->no_tls && setup_tls(srv, cfg) != 0)
        goto fail;
    if (cfg->store_dir != NULL) {
        int r = store_disk_prepare(loop, cfg->store_dir);
        if (r != 0) {
            log_server(LOG_ERROR, "--store-dir %s: %s", cfg->store_dir, uv_strerror(r));
            goto fail;
        }
    }
    int any = 0;
    for (int i = 0; i < LISTENER_COUNT; i++) {
        listener *l = &srv->own.listeners[i];
        if (!cfg->listen[i].enabled ||
            (config_listener_policy((listener_kind)i)->implicit_tls && srv->tls == NULL))
            continue;
        char err[256];
        if (listener_open(l, &srv->own, (listener_kind)i, &cfg->listen[i], err, sizeof(err)) != 0) {
            log_server(LOG_ERROR, "%s", err);
            goto fail;
        }
        listener_config(srv, cfg, (listener_kind)i, l);
        log_server(LOG_INFO, "listening for %s on %s (%s)", l->name, l->bound,
                   l->implicit_tls ? "implicit TLS"
                   : l->cfg.starttls
                       ? (l->cfg.tls_required ? "STARTTLS required, then AUTH" : "STARTTLS offered")
                       : "plain SMTP, no TLS");
        any = 1;
    }
    if (!any) {
        log_server(LOG_ERROR, "every listener is off: nothing to serve");
        goto fail;
    }
    int admin_failed;
    srv->admin = admin_start(srv, &admin_failed);
    if (admin_failed || limit_connections(srv) != 0)
        goto fail;
    const fault_settings *fs = fault_profile_settings(profile);
    if (fs->name[0])
        log_server(LOG_INFO, "profile \"%s\" in force: %zu rule%s", fs->name, fault_profile_nrules(profile),
                   fault_profile_nrules(profile) == 1 ? "" : "s");
    scope_apply_modes(&srv->own);
    if (cfg->ports_file != NULL) {
        int r = write_ports_file(srv, cfg->ports_file);
        if (r != 0) {
            log_server(LOG_ERROR, "--ports-file %s: %s", cfg->ports_file, uv_strerror(r));
            goto fail;
        }
        srv->ports_written = 1;
    }
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    /* Started under nohup (SIGHUP ignored): a hangup is still not a reason to stop. */
    struct sigaction hup;
    if (sigaction(SIGHUP, NULL, &hup) != 0 || hup.sa_handler != SIG_IGN)
        uv_signal_start(&srv->sighup, on_signal, SIGHUP);
    uv_signal_start(&srv->sigusr1, on_sigusr1, SIGUSR1);
    return 0;

fail:
    scope_close_listeners(&srv->own);
    srv->stopping = 1;
    finish(srv);
    return -1;
}

void server_free(server *srv)
{
    scope_free(&srv->own);
    client_stories_forget(&srv->stories, NULL);
    admin_free(srv->admin);
    srv->admin = NULL;
    tls_server_free(srv->tls);
    srv->tls = NULL;
}
