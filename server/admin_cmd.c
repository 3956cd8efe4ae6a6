/*
 * admin_cmd.c - the admin commands: read the request's arguments, act on the server, build the response.
 *
 * Arguments are checked like profiles are: an unknown argument or one of the wrong type is an error
 * (bad_argument) that names it, and nothing is done. Error codes are stable: bad_request, invalid_json,
 * line_too_long, unknown_command, bad_argument, invalid_profile, forbidden, not_found, timeout,
 * unauthorized, unavailable, too_large, too_many_clients, too_many_subscribers, internal.
 */
#include "admin_cmd.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>

#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/coding.h>

#include "conn.h"
#include "profiles.h"
#include "server.h"
#include "utf8.h"

#define ADMIN_SOURCE_MAX   4096 /* profile.load "source": a file name, as PATH_MAX */
#define LIST_LIMIT_DEFAULT 1000
#define LIST_LIMIT_MAX     100000
#define WAIT_DEFAULT_S     10
#define WAIT_MAX_S         600
#define HEADERS_MAX        200 /* header fields shown by messages.get */

typedef cJSON *(*command_fn)(admin_client *c, scope *sc, const cJSON *req, cJSON *id);

cJSON *admin_error(const char *code, const char *fmt, ...)
{
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 0);
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", text);
    return o;
}

static cJSON *ok(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    return o;
}

/* -- arguments ---------------------------------------------------------------------------------------- */

int admin_listed(const char *list, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = list; *p != '\0'; p += strspn(p, ", ")) {
        size_t n = strcspn(p, ", ");
        if (n == klen && strncmp(p, key, n) == 0)
            return 1;
        p += n;
    }
    return 0;
}

/* check_args - every key of req is cmd, id, token or one of allowed (the command's arguments column) */
static cJSON *check_args(const cJSON *req, const char *allowed)
{
    for (const cJSON *k = req->child; k != NULL; k = k->next) {
        if (strcmp(k->string, "cmd") == 0 || strcmp(k->string, "id") == 0 || strcmp(k->string, "token") == 0)
            continue;
        if (!admin_listed(allowed, k->string))
            return admin_error("bad_argument", "unknown argument \"%.64s\" (expected %s%s)", k->string,
                               allowed[0] ? "one of: " : "none", allowed);
    }
    return NULL;
}

static const cJSON *arg(const cJSON *req, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(req, key);
}

/* string_arg - an optional string argument; *err set when it has another type */
static const char *string_arg(const cJSON *req, const char *key, cJSON **err)
{
    const cJSON *v = arg(req, key);
    if (v == NULL || *err != NULL)
        return NULL;
    if (!cJSON_IsString(v)) {
        *err = admin_error("bad_argument", "\"%s\" must be a string", key);
        return NULL;
    }
    return v->valuestring;
}

/* number_arg - an optional number within [min, max], dflt when absent */
static double number_arg(const cJSON *req, const char *key, double min, double max, double dflt, cJSON **err)
{
    const cJSON *v = arg(req, key);
    if (v == NULL || *err != NULL)
        return dflt;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= min && v->valuedouble <= max)) {
        *err = admin_error("bad_argument", "\"%s\" must be a number from %g to %g", key, min, max);
        return dflt;
    }
    return v->valuedouble;
}

/* filter_args - to, from, subject (globs) and since (a message id) */
static cJSON *filter_args(const cJSON *req, admin_filter *f, scope *sc)
{
    cJSON *err = NULL;
    const char *to = string_arg(req, "to", &err), *from = string_arg(req, "from", &err);
    const char *since = string_arg(req, "since", &err), *subject = string_arg(req, "subject", &err);
    if (err != NULL)
        return err;
    memset(f, 0, sizeof(*f));
    f->sc = sc;
    if (since != NULL) {
        store_msg *m = store_find(&sc->store, since);
        /* An id that was evicted or deleted still orders: ids end with the sequence number in hex. */
        size_t n = strlen(since);
        if (m != NULL)
            f->since_arrival = m->arrival;
        else if (n > 8 && strncmp(since, sc->store.pool->id_prefix, strlen(sc->store.pool->id_prefix)) == 0)
            f->since_seq = strtoull(since + n - 8, NULL, 16);
        else
            return admin_error("not_found", "no message has the id \"%.64s\" (for \"since\")", since);
    }
    f->to = to ? strdup(to) : NULL;
    f->from = from ? strdup(from) : NULL;
    f->subject = subject ? strdup(subject) : NULL;
    return NULL;
}

/* -- messages ---------------------------------------------------------------------------------------------
 */

cJSON *admin_message_summary(const store_msg *m)
{
    return store_msg_envelope_json(m);
}

/* base64_string - len bytes in base64, as a cJSON string (NULL when out of memory) */
static cJSON *base64_string(const char *data, size_t len)
{
    if (len == 0)
        return cJSON_CreateString("");
    word32 n = (word32)((len + 2) / 3 * 4 + 1);
    char *out = malloc(n);
    if (out == NULL || Base64_Encode_NoNl((const byte *)data, (word32)len, (byte *)out, &n) != 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    cJSON *s = cJSON_CreateString(out);
    free(out);
    return s;
}

/* add_text_or_base64 - key: the bytes as text when they are UTF-8, else key_base64 */
static void add_text_or_base64(cJSON *o, const char *key, const char *data, size_t len)
{
    if (memchr(data, '\0', len) == NULL && utf8_valid(data, len)) {
        char *text = strndup(data, len);
        if (text != NULL)
            cJSON_AddStringToObject(o, key, text);
        free(text);
        return;
    }
    char name[64];
    snprintf(name, sizeof(name), "%s_base64", key);
    cJSON_AddNullToObject(o, key);
    cJSON_AddItemToObject(o, name, base64_string(data, len));
}

/* add_headers - the header section (RFC 5322 section 2.2, unfolded) as [[name, value], ...]; body offset */
static size_t add_headers(cJSON *o, const char *msg, size_t len)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "headers");
    size_t off = 0;
    cJSON *last = NULL;
    int count = 0;
    while (off < len) {
        const char *line = msg + off;
        const char *lf = memchr(line, '\n', len - off);
        size_t n = lf ? (size_t)(lf - line) : len - off;
        size_t next = off + n + (lf ? 1 : 0);
        size_t l = n > 0 && line[n - 1] == '\r' ? n - 1 : n;
        if (l == 0)
            return next; /* the empty line before the body */
        if ((line[0] == ' ' || line[0] == '\t') && last != NULL) {
            /* a folded continuation: append to the previous field's value */
            cJSON *val = cJSON_GetArrayItem(last, 1);
            size_t old = strlen(val->valuestring);
            char *joined = malloc(old + l + 1);
            if (joined != NULL) {
                memcpy(joined, val->valuestring, old);
                memcpy(joined + old, line, l);
                joined[old + l] = '\0';
                cJSON_ReplaceItemInArray(last, 1, cJSON_CreateString(joined));
                free(joined);
            }
        } else {
            const char *colon = memchr(line, ':', l);
            if (colon == NULL)
                return off; /* not a header: the message has no header section */
            if (count++ >= HEADERS_MAX) {
                off = next;
                continue;
            }
            const char *v = colon + 1;
            while (v < line + l && (*v == ' ' || *v == '\t'))
                v++;
            char *name = strndup(line, (size_t)(colon - line));
            char *value = strndup(v, (size_t)(line + l - v));
            last = cJSON_CreateArray();
            cJSON_AddItemToArray(last, cJSON_CreateString(name ? name : ""));
            cJSON_AddItemToArray(last, cJSON_CreateString(value ? value : ""));
            cJSON_AddItemToArray(arr, last);
            free(name);
            free(value);
        }
        off = next;
    }
    return off;
}

static cJSON *cmd_messages_list(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c, (void)id;
    admin_filter f;
    cJSON *err = filter_args(req, &f, sc);
    if (err != NULL)
        return err;
    double limit = number_arg(req, "limit", 1, LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, &err);
    if (err != NULL) {
        free(f.to);
        free(f.from);
        free(f.subject);
        return err;
    }
    cJSON *resp = ok();
    cJSON *arr = cJSON_AddArrayToObject(resp, "messages");
    size_t n = 0, matched = 0;
    store_msg *m;
    TAILQ_FOREACH(m, &sc->store.msgs, link) {
        if (!admin_filter_match(&f, m))
            continue;
        matched++;
        if (n < (size_t)limit) {
            cJSON_AddItemToArray(arr, admin_message_summary(m));
            n++;
        }
    }
    cJSON_AddNumberToObject(resp, "count", (double)n);
    cJSON_AddBoolToObject(resp, "truncated", matched > n);
    free(f.to);
    free(f.from);
    free(f.subject);
    return resp;
}

static store_msg *find_message(scope *sc, const cJSON *req, cJSON **err)
{
    const cJSON *v = arg(req, "message");
    if (!cJSON_IsString(v)) {
        *err = admin_error("bad_argument", "\"message\" must be the id of a message (from messages.list)");
        return NULL;
    }
    store_msg *m = store_find(&sc->store, v->valuestring);
    if (m == NULL)
        *err = admin_error("not_found", "no message has the id \"%.64s\" (evicted, deleted or never kept)",
                           v->valuestring);
    return m;
}

static cJSON *cmd_messages_get(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c;
    (void)id;
    cJSON *err = NULL;
    const cJSON *raw = arg(req, "raw");
    if (raw != NULL && !cJSON_IsBool(raw))
        return admin_error("bad_argument", "\"raw\" must be true or false");
    store_msg *m = find_message(sc, req, &err);
    if (m == NULL)
        return err;
    cJSON *resp = ok();
    cJSON_AddItemToObject(resp, "message", admin_message_summary(m));
    const char *body = m->body ? m->body : "";
    size_t body_at = add_headers(resp, body, m->size);
    add_text_or_base64(resp, "body", body + body_at, m->size - body_at);
    if (cJSON_IsTrue(raw))
        cJSON_AddItemToObject(resp, "raw_base64", base64_string(body, m->size));
    return resp;
}

static cJSON *cmd_messages_delete(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c;
    (void)id;
    cJSON *err = NULL;
    store_msg *m = find_message(sc, req, &err);
    if (m == NULL)
        return err;
    cJSON *resp = ok();
    cJSON_AddStringToObject(resp, "deleted", m->id);
    store_remove(&sc->store, m);
    return resp;
}

static cJSON *cmd_messages_clear(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c;
    (void)req, (void)id;
    cJSON *resp = ok();
    cJSON_AddNumberToObject(resp, "cleared", (double)store_clear(&sc->store));
    return resp;
}

static cJSON *cmd_messages_wait(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    cJSON *err = NULL;
    double timeout = number_arg(req, "timeout", 0, WAIT_MAX_S, WAIT_DEFAULT_S, &err);
    if (err != NULL)
        return err;
    admin_filter f;
    if ((err = filter_args(req, &f, sc)) != NULL)
        return err;
    /* A match already kept answers at once: a test may send first and wait after. */
    store_msg *m;
    TAILQ_FOREACH(m, &sc->store.msgs, link)
        if (admin_filter_match(&f, m)) {
            free(f.to);
            free(f.from);
            free(f.subject);
            cJSON *resp = ok();
            cJSON_AddItemToObject(resp, "message", admin_message_summary(m));
            return resp;
        }
    admin_defer_wait(c, id, &f, (uint64_t)llround(timeout * 1000));
    return NULL;
}

/* -- profiles ------------------------------------------------------------------------------------------- */

/*
 * compile_request - the profile of profile.load/validate: inline, a shipped one by name, or a server file
 * in a profile directory or one of --admin-allow-paths (anyone with the admin socket would read any file
 * the server can: errors and profile.get echo it).
 */
static fault_profile *compile_request(const config *cfg, const cJSON *req, cJSON **err)
{
    const cJSON *inline_p = arg(req, "profile"), *path = arg(req, "path"), *source = arg(req, "source");
    const cJSON *name = arg(req, "name");
    if (source != NULL && (!cJSON_IsString(source) || strlen(source->valuestring) > ADMIN_SOURCE_MAX)) {
        *err = admin_error(
            "bad_argument",
            "\"source\" must be a string of at most %d bytes (the name errors are reported under)",
            ADMIN_SOURCE_MAX);
        return NULL;
    }
    if ((inline_p != NULL) + (path != NULL) + (name != NULL) != 1) {
        *err =
            admin_error("bad_argument", "give one of \"profile\" (the profile as JSON), \"name\" (a shipped "
                                        "profile) or \"path\" (a file on the server)");
        return NULL;
    }
    if ((path != NULL && !cJSON_IsString(path)) || (name != NULL && !cJSON_IsString(name))) {
        *err = admin_error("bad_argument", "\"%s\" must be a string", path ? "path" : "name");
        return NULL;
    }
    fault_errors errs = {NULL, 0};
    fault_profile *p = NULL;
    if (name != NULL) {
        char file[4096];
        if (profiles_find_shipped(name->valuestring, file, sizeof(file)) != 0) {
            *err = admin_error("not_found",
                               "no shipped profile is named \"%.100s\" (smtpfault profiles lists them)",
                               name->valuestring);
            return NULL;
        }
        p = profiles_load(file, &errs);
    } else if (path != NULL) {
        char file[4096];
        if (profiles_path_allowed(path->valuestring, cfg->admin_allow_paths, file, sizeof(file)) != 0) {
            *err = admin_error("forbidden",
                               "\"%.200s\" is not a file in a profile directory ($SMTPFAULT_PROFILES, the "
                               "shipped profiles) or in --admin-allow-paths",
                               path->valuestring);
            return NULL;
        }
        p = profiles_load(file, &errs);
    } else {
        char *text = cJSON_PrintUnformatted(inline_p);
        if (text != NULL)
            p = fault_profile_compile(text, strlen(text), source ? source->valuestring : "profile", &errs);
        cJSON_free(text);
    }
    if (p == NULL) {
        if (errs.n == 0)
            *err = admin_error("internal", "out of memory");
        else if (errs.n == 1)
            *err = admin_error("invalid_profile", "%s", errs.msgs[0]);
        else
            *err = admin_error("invalid_profile", "%s (and %zu more errors)", errs.msgs[0], errs.n - 1);
        cJSON *list = cJSON_AddArrayToObject(*err, "errors");
        for (size_t i = 0; i < errs.n; i++)
            cJSON_AddItemToArray(list, cJSON_CreateString(errs.msgs[i]));
    }
    fault_errors_free(&errs);
    return p;
}

/* add_profile_facts - name, rules, and what the profile touches: stages, listeners, settings */
static void add_profile_facts(cJSON *o, const fault_profile *p)
{
    static const char *const listener_names[] = {
#define LISTENER_NAME(e, s) s,
        FAULT_LISTENER_LIST(LISTENER_NAME)
#undef LISTENER_NAME
    };
    const fault_settings *fs = fault_profile_settings(p);
    cJSON_AddStringToObject(o, "name", fs->name);
    cJSON_AddNumberToObject(o, "rules", (double)fault_profile_nrules(p));
    fault_summary sum;
    fault_profile_summarize(p, &sum);
    cJSON *stages = cJSON_AddArrayToObject(o, "stages");
    for (int i = 0; i < FAULT_STAGE_COUNT; i++)
        if (sum.stages & (1u << i))
            cJSON_AddItemToArray(stages, cJSON_CreateString(fault_stage_name((fault_stage)i)));
    cJSON *listeners = cJSON_AddArrayToObject(o, "listeners");
    for (size_t i = 0; i < sizeof(listener_names) / sizeof(listener_names[0]); i++)
        if (sum.listeners & (1u << i))
            cJSON_AddItemToArray(listeners, cJSON_CreateString(listener_names[i]));
    cJSON *settings = cJSON_AddArrayToObject(o, "settings");
    for (size_t i = 0; i < sum.nsettings; i++)
        cJSON_AddItemToArray(settings, cJSON_CreateString(sum.settings[i]));
}

static cJSON *cmd_profile_load(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)id;
    cJSON *err = NULL;
    fault_profile *p = compile_request(admin_server(c)->cfg, req, &err);
    if (p == NULL)
        return err;
    int r = scope_set_profile(sc, p);
    cJSON *resp = r == 0 ? ok() : admin_error("internal", "out of memory");
    if (r == 0)
        add_profile_facts(resp, p);
    fault_profile_unref(p);
    return resp;
}

static cJSON *cmd_profile_validate(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)sc;
    (void)id;
    cJSON *err = NULL;
    fault_profile *p = compile_request(admin_server(c)->cfg, req, &err);
    if (p == NULL)
        return err;
    cJSON *resp = ok();
    cJSON_AddBoolToObject(resp, "valid", 1);
    add_profile_facts(resp, p);
    fault_profile_unref(p);
    return resp;
}

static cJSON *cmd_profile_get(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c;
    (void)req, (void)id;
    const fault_profile *p = fault_run_profile(sc->fault_run);
    cJSON *resp = ok();
    add_profile_facts(resp, p);
    cJSON *src = cJSON_Parse(fault_profile_source(p));
    cJSON_AddItemToObject(resp, "profile", src ? src : cJSON_CreateObject());
    return resp;
}

static cJSON *cmd_profile_clear(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c;
    (void)req, (void)id;
    fault_profile *p = fault_profile_default();
    int r = p ? scope_set_profile(sc, p) : -1;
    fault_profile_unref(p);
    return r == 0 ? ok() : admin_error("internal", "out of memory");
}

/* -- the rest
 * ------------------------------------------------------------------------------------------------ */

static cJSON *cmd_ping(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)sc;
    (void)c, (void)req, (void)id;
    cJSON *resp = ok();
    cJSON_AddBoolToObject(resp, "pong", 1);
    return resp;
}

static cJSON *cmd_version(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)sc;
    (void)c, (void)req, (void)id;
    cJSON *resp = ok();
    cJSON_AddStringToObject(resp, "version", SMTPFAULT_VERSION);
    cJSON_AddStringToObject(resp, "libuv", uv_version_string());
    cJSON_AddStringToObject(resp, "wolfssl", LIBWOLFSSL_VERSION_STRING);
    cJSON_AddStringToObject(resp, "cjson", cJSON_Version());
    return resp;
}

static cJSON *cmd_stats(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)req, (void)id;
    (void)c;
    cJSON *resp = ok();
    scope_stats_json(sc, resp);
    return resp;
}

static cJSON *cmd_sessions_list(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c;
    (void)req, (void)id;
    cJSON *resp = ok();
    scope_sessions_json(sc, resp);
    return resp;
}

static cJSON *cmd_sessions_get(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c;
    (void)id;
    const cJSON *sv = arg(req, "session");
    double sid = cJSON_IsNumber(sv) ? sv->valuedouble : 0;
    if (sid < 1 || sid > 9007199254740991.0 || sid != floor(sid))
        return admin_error("bad_argument",
                           "\"session\" must be a session id, a whole number (from sessions.list)");
    cJSON *s = scope_session_json(sc, (uint64_t)sid);
    if (s == NULL)
        return admin_error("not_found", "no live or recent session has the id %.0f", sid);
    cJSON *resp = ok();
    cJSON_AddItemToObject(resp, "session", s);
    return resp;
}

static cJSON *cmd_events_subscribe(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)req, (void)id;
    if (admin_subscribe(c, sc) != 0)
        return admin_error("too_many_subscribers", "at most %d clients may subscribe at once",
                           admin_subscribers_max());
    cJSON *resp = ok();
    cJSON_AddBoolToObject(resp, "subscribed", 1);
    return resp;
}

static cJSON *cmd_tls_ca(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)sc;
    (void)req, (void)id;
    server *srv = admin_server(c);
    if (srv->tls == NULL)
        return admin_error("unavailable", "TLS is off (--no-tls)");
    cJSON *resp = ok();
    cJSON_AddStringToObject(resp, "pem", tls_server_ca_pem(srv->tls));
    return resp;
}

static cJSON *cmd_reset(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c;
    (void)req, (void)id;
    size_t cleared;
    if (scope_reset(sc, &cleared) != 0)
        return admin_error("internal", "out of memory");
    cJSON *resp = ok();
    cJSON_AddNumberToObject(resp, "cleared", (double)cleared);
    add_profile_facts(resp, fault_run_profile(sc->fault_run));
    return resp;
}

/* -- scopes ----------------------------------------------------------------------------------------- */

/* listeners_arg - scope.create's "listeners": a bit per listener kind named; 0 when absent */
static unsigned listeners_arg(const cJSON *req, cJSON **err)
{
    const cJSON *v = arg(req, "listeners");
    if (v == NULL)
        return 0;
    unsigned kinds = 0;
    const cJSON *item;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        goto bad;
    cJSON_ArrayForEach(item, v)
    {
        int k = cJSON_IsString(item) ? config_listener_kind(item->valuestring) : -1;
        if (k < 0 || (kinds & (1u << k)))
            goto bad;
        kinds |= 1u << k;
    }
    return kinds;
bad:
    *err = admin_error("bad_argument",
                       "\"listeners\" must be a list of distinct listener names: smtp, submission, smtps");
    return 0;
}

static cJSON *cmd_scope_create(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)sc, (void)id;
    cJSON *err = NULL;
    const cJSON *keep = arg(req, "keep");
    if (keep != NULL && !cJSON_IsBool(keep))
        return admin_error("bad_argument", "\"keep\" must be true or false");
    scope_request r = {NULL, listeners_arg(req, &err), cJSON_IsTrue(keep), c};
    if (err != NULL)
        return err;
    if (arg(req, "profile") != NULL || arg(req, "name") != NULL || arg(req, "path") != NULL ||
        arg(req, "source") != NULL) {
        if ((r.profile = compile_request(admin_server(c)->cfg, req, &err)) == NULL)
            return err;
    }
    const char *code = "internal";
    char why[300];
    scope *created = scope_create(admin_server(c), &r, &code, why, sizeof(why));
    fault_profile_unref(r.profile);
    if (created == NULL)
        return admin_error(code, "%s", why);
    cJSON *resp = ok();
    cJSON_AddStringToObject(resp, "scope", created->id);
    cJSON_AddBoolToObject(resp, "keep", created->keep);
    scope_listeners_json(created, cJSON_AddObjectToObject(resp, "listeners"));
    add_profile_facts(cJSON_AddObjectToObject(resp, "profile"), fault_run_profile(created->fault_run));
    return resp;
}

static cJSON *cmd_scope_list(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)sc, (void)req, (void)id;
    cJSON *resp = ok();
    cJSON *arr = cJSON_AddArrayToObject(resp, "scopes");
    /* Oldest first, as created. */
    const scope *s;
    TAILQ_FOREACH_REVERSE(s, &admin_server(c)->scopes, scope_list, link) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "scope", s->id);
        cJSON_AddBoolToObject(o, "keep", s->keep);
        scope_listeners_json(s, cJSON_AddObjectToObject(o, "listeners"));
        cJSON_AddStringToObject(o, "profile", fault_profile_settings(fault_run_profile(s->fault_run))->name);
        cJSON *sessions = cJSON_AddObjectToObject(o, "sessions");
        cJSON_AddNumberToObject(sessions, "live", (double)s->nconns);
        cJSON_AddNumberToObject(sessions, "total", (double)s->sessions);
        cJSON_AddNumberToObject(o, "messages", (double)s->store.count);
        cJSON_AddItemToArray(arr, o);
    }
    return resp;
}

static cJSON *cmd_scope_delete(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)c, (void)id;
    if (arg(req, "scope") == NULL)
        return admin_error("bad_argument", "\"scope\" must be the id of a scope (from scope.create)");
    cJSON *resp = ok();
    cJSON_AddStringToObject(resp, "deleted", sc->id);
    scope_end(sc, "scope.delete");
    return resp;
}

static const struct {
    const char *name;
    command_fn fn;
    const char *args; /* the only keys the request may have besides cmd, id and token */
} commands[] = {
#define ADMIN_COMMAND_ROW(name, fn, args, summary) {name, cmd_##fn, args},
    ADMIN_COMMAND_LIST(ADMIN_COMMAND_ROW)
#undef ADMIN_COMMAND_ROW
};

/* scope_arg - the scope a command acts on: the one "scope" names, or the server's own */
static scope *scope_arg(admin_client *c, const cJSON *req, cJSON **err)
{
    server *srv = admin_server(c);
    const cJSON *v = arg(req, "scope");
    if (v == NULL)
        return &srv->own;
    if (!cJSON_IsString(v)) {
        *err = admin_error("bad_argument", "\"scope\" must be the id of a scope (from scope.create)");
        return NULL;
    }
    scope *sc = scope_find(srv, v->valuestring);
    if (sc == NULL)
        *err = admin_error("not_found", "no scope has the id \"%.64s\"", v->valuestring);
    return sc;
}

cJSON *admin_command(admin_client *c, const cJSON *req, cJSON *id)
{
    const char *name = cJSON_GetObjectItemCaseSensitive(req, "cmd")->valuestring;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0) {
            cJSON *err = check_args(req, commands[i].args);
            scope *sc = err == NULL ? scope_arg(c, req, &err) : NULL;
            return err != NULL ? err : commands[i].fn(c, sc, req, id);
        }
    char list[800];
    size_t o = 0;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]) && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", commands[i].name);
    return admin_error("unknown_command", "unknown command \"%.64s\" (expected one of: %s)", name, list);
}

scope *admin_request_scope(admin_client *c, const cJSON *req, cJSON **err)
{
    return scope_arg(c, req, err);
}

store_msg *admin_find_message(admin_client *c, const cJSON *req, cJSON **err)
{
    scope *sc = scope_arg(c, req, err);
    return sc != NULL ? find_message(sc, req, err) : NULL;
}
