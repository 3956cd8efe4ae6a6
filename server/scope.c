/*
 * scope.c - scopes: their profile and listener modes, what their sessions leave (messages, records,
 * events, counters), and the life of created ones: create on new ports, end, free.
 */
#include "scope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "server.h"

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_modes_timer(uv_timer_t *t);

int scope_init(scope *sc, server *srv, const char *id, fault_profile *profile)
{
    memset(sc, 0, sizeof(*sc));
    sc->srv = srv;
    LIST_INIT(&sc->conns);
    snprintf(sc->id, sizeof(sc->id), "%s", id);
    store_init(&sc->store, &srv->messages);
    sessions_ring_init(&sc->recent, &srv->closed);
    uv_timer_init(srv->loop, &sc->modes);
    sc->modes.data = sc;
    sc->created_ms = wall_now_ms();
    sc->start_profile = fault_profile_ref(profile);
    sc->fault_run = fault_run_new(profile, server_now_ms(), srv->cfg->magic);
    return sc->fault_run == NULL ? -1 : 0;
}

void scope_apply_modes(scope *sc)
{
    if (sc->ending)
        return; /* its timer serves the end now (on_end_grace) */
    uv_timer_stop(&sc->modes);
    if (sc->srv->stopping)
        return;
    int64_t now = server_now_ms(), next = INT64_MAX;
    for (int i = 0; i < LISTENER_COUNT; i++) {
        listener *l = &sc->listeners[i];
        if (!l->open)
            continue;
        int64_t when;
        int kind = fault_run_listener_mode(sc->fault_run, l->name, now, &when);
        listener_set_mode(l, kind == FAULT_ACTION_REFUSE      ? LISTENER_REFUSE
                             : kind == FAULT_ACTION_BLACKHOLE ? LISTENER_BLACKHOLE
                                                              : LISTENER_ACCEPT);
        if (when < next)
            next = when;
    }
    if (next != INT64_MAX)
        uv_timer_start(&sc->modes, on_modes_timer, (uint64_t)(next > now ? next - now : 0), 0);
}

static void on_modes_timer(uv_timer_t *t)
{
    scope_apply_modes(t->data);
}

/* scope_label - " in scope s1" for log lines, "" for the server's own */
static const char *scope_label(const scope *sc, char *buf, size_t size)
{
    if (sc->id[0] == '\0')
        return "";
    snprintf(buf, size, " in scope %s", sc->id);
    return buf;
}

int scope_set_profile(scope *sc, fault_profile *p)
{
    fault_run *run = fault_run_new(p, server_now_ms(), sc->srv->cfg->magic);
    if (run == NULL)
        return -1;
    fault_run_unref(sc->fault_run); /* connections keep theirs */
    sc->fault_run = run;
    const fault_settings *fs = fault_profile_settings(p);
    char label[SCOPE_ID_MAX + 16];
    log_server(LOG_INFO, "profile %s%s%s in force%s: %zu rule%s", fs->name[0] ? "\"" : "",
               fs->name[0] ? fs->name : "(default)", fs->name[0] ? "\"" : "",
               scope_label(sc, label, sizeof(label)), fault_profile_nrules(p),
               fault_profile_nrules(p) == 1 ? "" : "s");
    scope_apply_modes(sc);
    return 0;
}

int scope_reset(scope *sc, size_t *cleared)
{
    fault_run *run = fault_run_new(sc->start_profile, server_now_ms(), sc->srv->cfg->magic);
    if (run == NULL)
        return -1;
    fault_run_unref(sc->fault_run);
    sc->fault_run = run;
    *cleared = store_clear(&sc->store);
    sc->store.accepted = sc->store.evicted = sc->store.evicted_bytes = 0;
    sc->discarded = 0;
    client_stories_forget(&sc->srv->stories, sc->id);
    char label[SCOPE_ID_MAX + 16];
    log_server(LOG_INFO, "reset%s: %zu message%s cleared, profile and counters back to the start",
               scope_label(sc, label, sizeof(label)), *cleared, *cleared == 1 ? "" : "s");
    scope_apply_modes(sc);
    return 0;
}

void scope_close_listeners(scope *sc)
{
    for (int i = 0; i < LISTENER_COUNT; i++)
        listener_close(&sc->listeners[i]);
}

void scope_listeners_json(const scope *sc, cJSON *obj)
{
    for (int i = 0; i < LISTENER_COUNT; i++) {
        const listener *l = &sc->listeners[i];
        if (!l->open)
            continue;
        cJSON *o = cJSON_AddObjectToObject(obj, l->name);
        cJSON_AddStringToObject(o, "host", l->host);
        cJSON_AddNumberToObject(o, "port", l->port);
        cJSON_AddStringToObject(o, "address", l->bound);
    }
}

void scope_event(scope *sc, uint64_t sid, int level, const char *event, const char *text, size_t len)
{
    log_session((log_level)level, sid, event, text, len);
    if (level <= LOG_INFO)
        admin_publish(sc->srv->admin, sc, sid, event, text, len);
}

void scope_message_stored(scope *sc, store_msg *m)
{
    if (sc->ending)
        return; /* a --store-dir write that finished after the scope ended: its messages are gone */
    store_add(&sc->store, m);
    admin_message_stored(sc->srv->admin, sc, m);
}

void scope_record_session(scope *sc, session_record *rec)
{
    sc->bytes_in += rec->bytes_in;
    sc->bytes_out += rec->bytes_out;
    sessions_ring_add(&sc->recent, rec);
}

static const char *const mode_names[] = {"accept", "refuse", "blackhole"};

void scope_stats_json(scope *sc, cJSON *out)
{
    server *srv = sc->srv;
    cJSON_AddNumberToObject(out, "uptime_ms", (double)(server_now_ms() - srv->started_ms));
    cJSON *s = cJSON_AddObjectToObject(out, "sessions");
    cJSON_AddNumberToObject(s, "live", (double)sc->nconns);
    cJSON_AddNumberToObject(s, "total", (double)sc->sessions);
    cJSON *m = cJSON_AddObjectToObject(out, "messages");
    cJSON_AddNumberToObject(m, "accepted", (double)sc->store.accepted);
    cJSON_AddNumberToObject(m, "kept", (double)sc->store.count);
    cJSON_AddNumberToObject(m, "kept_bytes", (double)sc->store.bytes);
    cJSON_AddNumberToObject(m, "evicted", (double)sc->store.evicted);
    cJSON_AddNumberToObject(m, "evicted_bytes", (double)sc->store.evicted_bytes);
    cJSON_AddNumberToObject(m, "discarded", (double)sc->discarded);
    uint64_t in = sc->bytes_in, outb = sc->bytes_out;
    for (conn *c = LIST_FIRST(&sc->conns); c != NULL; c = conn_next(c)) {
        uint64_t ci, co;
        conn_bytes(c, &ci, &co);
        in += ci;
        outb += co;
    }
    /* The process's: every scope shares them. */
    cJSON *cap = cJSON_AddObjectToObject(out, "capacity");
    cJSON_AddNumberToObject(cap, "connections", (double)server_conn_room(srv));
    cJSON_AddNumberToObject(cap, "refused", (double)srv->refused);
    cJSON_AddNumberToObject(cap, "inflight_bytes", (double)srv->inflight.used);
    cJSON_AddNumberToObject(cap, "max_inflight_bytes", (double)srv->inflight.max);
    cJSON *b = cJSON_AddObjectToObject(out, "bytes");
    cJSON_AddNumberToObject(b, "in", (double)in);
    cJSON_AddNumberToObject(b, "out", (double)outb);

    const fault_profile *p = fault_run_profile(sc->fault_run);
    fault_stats st;
    fault_run_stats(sc->fault_run, &st);
    cJSON *f = cJSON_AddObjectToObject(out, "faults");
    cJSON_AddStringToObject(f, "profile", fault_profile_settings(p)->name);
    cJSON_AddNumberToObject(f, "fired", (double)st.fired_total);
    cJSON *by_stage = cJSON_AddObjectToObject(f, "by_stage");
    for (int i = 0; i < FAULT_STAGE_COUNT; i++)
        if (st.fired_by_stage[i] > 0)
            cJSON_AddNumberToObject(by_stage, fault_stage_name((fault_stage)i), (double)st.fired_by_stage[i]);
    cJSON *by_rule = cJSON_AddArrayToObject(f, "by_rule");
    for (size_t i = 0; i < fault_profile_nrules(p); i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "rule", (double)i);
        cJSON_AddStringToObject(r, "name", fault_profile_rule_name(p, i));
        cJSON_AddNumberToObject(r, "fired", (double)st.fired_by_rule[i]);
        cJSON_AddItemToArray(by_rule, r);
    }
    cJSON_AddNumberToObject(f, "limits", (double)st.limits);
    cJSON_AddNumberToObject(f, "greylisted", (double)st.greylisted);
    cJSON_AddNumberToObject(f, "magic", (double)st.magic);
    cJSON *l = cJSON_AddObjectToObject(out, "listeners");
    for (int i = 0; i < LISTENER_COUNT; i++) {
        const listener *ls = &sc->listeners[i];
        if (!ls->open)
            continue;
        cJSON *o = cJSON_AddObjectToObject(l, ls->name);
        cJSON_AddStringToObject(o, "address", ls->bound);
        cJSON_AddStringToObject(o, "mode", mode_names[ls->mode]);
    }
}

/* release - what the scope holds, once nothing refers to it */
static void release(scope *sc)
{
    store_clear(&sc->store);
    sessions_ring_free(&sc->recent);
    fault_profile_unref(sc->start_profile);
    sc->start_profile = NULL;
    fault_run_unref(sc->fault_run);
    sc->fault_run = NULL;
}

void scope_free(scope *sc)
{
    release(sc);
}

static void on_modes_closed(uv_handle_t *h)
{
    scope *sc = h->data;
    sc->srv->scope_fds -= SCOPE_FDS_MAX;
    release(sc);
    free(sc);
}

/* move_to - sc out of the list it is in (if any) and, unless to is NULL, first in to */
static void move_to(scope *sc, scope_list *to)
{
    if (sc->list != NULL)
        TAILQ_REMOVE(sc->list, sc, link);
    if (to != NULL)
        TAILQ_INSERT_HEAD(to, sc, link);
    sc->list = to;
}

/* finish - a created scope that ended and has no session left: its timer closes, then it is freed */
static void finish(scope *sc)
{
    if (uv_is_closing((uv_handle_t *)&sc->modes))
        return;
    move_to(sc, NULL);
    uv_close((uv_handle_t *)&sc->modes, on_modes_closed);
}

void scope_conn_gone(scope *sc)
{
    if (sc->ending && sc->nconns == 0)
        finish(sc);
}

/* -- created scopes ----------------------------------------------------------------------------------- */

/* port_held - a live listener of the server's own or of a created scope has host:port, listening or not: a
 * refusing listener has closed its socket but goes back to its port when its window ends */
static int port_held(server *srv, const char *host, int port)
{
    for (scope *sc = &srv->own; sc != NULL;
         sc = sc == &srv->own ? TAILQ_FIRST(&srv->scopes) : TAILQ_NEXT(sc, link))
        for (int i = 0; i < LISTENER_COUNT; i++) {
            const listener *l = &sc->listeners[i];
            if (l->open && l->port == port && strcmp(l->host, host) == 0)
                return 1;
        }
    return 0;
}

/*
 * open_listener - the scope's listener of kind k on the host of the server's own: a port the kernel picks,
 * or the first free one of --scope-ports from where the last search stopped; never a port another listener
 * holds while it refuses. 0, or -1 with *code and err.
 */
static int open_listener(scope *sc, listener_kind k, const char **code, char *err, size_t errsz)
{
    server *srv = sc->srv;
    const config *cfg = srv->cfg;
    const listener *own = &srv->own.listeners[k];
    listener *l = &sc->listeners[k];
    listen_addr addr;
    memset(&addr, 0, sizeof(addr));
    addr.enabled = 1;
    snprintf(addr.host, sizeof(addr.host), "%s", own->host);
    unsigned tries = cfg->scope_port_low ? cfg->scope_port_high - cfg->scope_port_low + 1 : SCOPE_PORT_PICKS;
    int r = 0;
    for (unsigned i = 0; i < tries; i++) {
        if (cfg->scope_port_low) {
            addr.port = (int)(cfg->scope_port_low + srv->scope_port_next++ % tries);
            if (port_held(srv, addr.host, addr.port)) {
                r = UV_EADDRINUSE;
                continue;
            }
        }
        r = listener_open(l, sc, k, &addr, err, errsz);
        if (r == 0 && port_held(srv, l->host, l->port)) {
            listener_close(l); /* the kernel picked a port a refusing listener will take back */
            snprintf(err, errsz, "no free port for %s", own->name);
            r = UV_EADDRINUSE;
            continue;
        }
        if (r == 0) {
            l->cfg = own->cfg;
            l->implicit_tls = own->implicit_tls;
            return 0;
        }
        if (r != UV_EADDRINUSE)
            break;
    }
    *code = "unavailable";
    if (r == UV_EADDRINUSE && cfg->scope_port_low)
        snprintf(err, errsz, "no free port for %s in --scope-ports %u-%u", own->name, cfg->scope_port_low,
                 cfg->scope_port_high);
    return -1;
}

scope *scope_create(server *srv, const scope_request *req, const char **code, char *err, size_t errsz)
{
    if (srv->stopping) {
        *code = "unavailable";
        snprintf(err, errsz, "the server is stopping");
        return NULL;
    }
    if (srv->nscopes >= srv->cfg->max_scopes) {
        *code = "too_many_scopes";
        snprintf(err, errsz, "at most %zu scopes may be alive at once (--max-scopes)", srv->cfg->max_scopes);
        return NULL;
    }
    /* Descriptors are shared with SMTP connections as they come (server.c's limit_connections). */
    if (srv->fd_budget != SIZE_MAX &&
        srv->scope_fds + SCOPE_FDS_MAX + srv->nconns * SERVER_FDS_PER_CONN > srv->fd_budget) {
        *code = "unavailable";
        snprintf(
            err, errsz,
            "no descriptors left for another scope: %zu SMTP connections and %zu scopes hold them (ulimit "
            "-n; retry when connections have closed)",
            srv->nconns, srv->nscopes);
        return NULL;
    }
    unsigned running = 0;
    for (int i = 0; i < LISTENER_COUNT; i++)
        if (srv->own.listeners[i].open)
            running |= 1u << i;
    unsigned kinds = req->listeners ? req->listeners : running;
    for (int i = 0; i < LISTENER_COUNT; i++)
        if ((kinds & ~running) & (1u << i)) {
            *code = "bad_argument";
            snprintf(err, errsz, "the server does not run a %s listener, so a scope cannot have one",
                     config_listener_name((listener_kind)i));
            return NULL;
        }
    scope *sc = malloc(sizeof(*sc));
    fault_profile *dflt = req->profile ? NULL : fault_profile_default();
    char id[SCOPE_ID_MAX];
    snprintf(id, sizeof(id), "s%llu", (unsigned long long)(srv->next_scope_id + 1));
    if (sc == NULL || (req->profile == NULL && dflt == NULL)) {
        free(sc);
        fault_profile_unref(dflt);
        *code = "internal";
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    srv->scope_fds += SCOPE_FDS_MAX; /* given back when it is freed (on_modes_closed) */
    int r = scope_init(sc, srv, id, req->profile ? req->profile : dflt);
    fault_profile_unref(dflt);
    for (int i = 0; r == 0 && i < LISTENER_COUNT; i++)
        if (kinds & (1u << i))
            r = open_listener(sc, (listener_kind)i, code, err, errsz);
    if (r != 0) {
        if (sc->fault_run == NULL) {
            *code = "internal";
            snprintf(err, errsz, "out of memory");
        }
        scope_close_listeners(sc);
        sc->ending = 1;
        finish(sc);
        return NULL;
    }
    srv->next_scope_id++;
    sc->keep = req->keep;
    sc->owner = req->keep ? NULL : req->owner;
    move_to(sc, &srv->scopes);
    srv->nscopes++;
    const fault_settings *fs = fault_profile_settings(fault_run_profile(sc->fault_run));
    char where[3 * 90];
    size_t o = 0;
    for (int i = 0; i < LISTENER_COUNT && o < sizeof(where); i++)
        if (sc->listeners[i].open)
            o += (size_t)snprintf(where + o, sizeof(where) - o, "%s%s %s", o ? ", " : "",
                                  sc->listeners[i].name, sc->listeners[i].bound);
    log_server(LOG_INFO, "scope %s created%s: profile %s%s%s; %s", sc->id, sc->keep ? " (kept)" : "",
               fs->name[0] ? "\"" : "", fs->name[0] ? fs->name : "(default)", fs->name[0] ? "\"" : "", where);
    scope_apply_modes(sc);
    return sc;
}

scope *scope_find(server *srv, const char *id)
{
    scope *sc;
    TAILQ_FOREACH(sc, &srv->scopes, link)
        if (strcmp(sc->id, id) == 0)
            return sc;
    return NULL;
}

void scope_shutdown_conns(scope *sc, int force)
{
    /* Iterate with the next pointer saved: a connection may free itself synchronously. */
    for (conn *c = LIST_FIRST(&sc->conns), *next; c != NULL; c = next) {
        next = conn_next(c);
        conn_shutdown(c, force);
    }
}

/* on_end_grace - sessions still open SCOPE_END_GRACE_MS after their scope ended (a client that reads none of
 * its replies keeps its 421 and FIN queued forever): closed now */
static void on_end_grace(uv_timer_t *t)
{
    scope_shutdown_conns(t->data, 1);
}

void scope_end(scope *sc, const char *why)
{
    if (sc->ending || sc == &sc->srv->own)
        return;
    server *srv = sc->srv;
    sc->ending = 1;
    /* Among the ended until its last session has gone: a stop that closes every connection closes its too. */
    move_to(sc, &srv->ended);
    srv->nscopes--;
    log_server(LOG_INFO, "scope %s ended: %s (%zu session%s closed, %zu message%s dropped)", sc->id, why,
               sc->nconns, sc->nconns == 1 ? "" : "s", sc->store.count, sc->store.count == 1 ? "" : "s");
    /* Its ports first: answering its waits runs the requests queued behind them (a scope.create too). */
    scope_close_listeners(sc);
    uv_timer_stop(&sc->modes);
    admin_scope_ended(srv->admin, sc);
    store_clear(&sc->store);
    scope_shutdown_conns(sc, 1);
    if (sc->nconns == 0)
        finish(sc);
    else /* the modes timer has no other use now */
        uv_timer_start(&sc->modes, on_end_grace, SCOPE_END_GRACE_MS, 0);
}

void scope_owner_gone(server *srv, const void *owner)
{
    /* From the start each time: ending one scope answers waits, which may run requests that end others. */
    for (scope *sc = TAILQ_FIRST(&srv->scopes); sc != NULL;) {
        if (sc->owner == owner) {
            scope_end(sc, "the admin connection that created it closed");
            sc = TAILQ_FIRST(&srv->scopes);
        } else {
            sc = TAILQ_NEXT(sc, link);
        }
    }
}
