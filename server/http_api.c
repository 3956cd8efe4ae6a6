/*
 * http_api.c - the admin port's HTTP routes. Each route becomes an admin command's request object, run by
 * the same dispatcher as an NDJSON line (admin_run_request), and answered with the same response object:
 * POST /api/v1/<command> takes the request object as its body; the REST reads build it from the path and
 * the query. A few routes shape the answer differently: the raw message, the catalog, the event stream,
 * the health checks and Mailpit's message API (mailpit.c). docs/http.md is the reference.
 */
#include "http_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "admin_cmd.h"
#include "admin_http.h"
#include "mailpit.h"
#include "mime.h"
#include "profiles.h"
#include "server.h"
#include "webui.h"

#define API_PREFIX     "/api/v1/"
#define API_SEGMENTS   4  /* a REST path has at most this many segments: messages/ID/raw */
#define QUERY_ARGS_MAX 16 /* query parameters of one request */

/* -- requests ----------------------------------------------------------------------------------------- */

/*
 * percent_decode - n bytes of a path segment or query value, %XX and (plus_space) '+' decoded, as a new
 * string; NULL when an escape is broken or decodes to NUL
 */
static char *percent_decode(const char *s, size_t n, int plus_space)
{
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? mime_hex_value(s[i + 1]) : -1;
            int lo = i + 2 < n ? mime_hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = plus_space && s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

/* add_value - key: value into req, as a number for the keys that take one ("limit", "session") */
static cJSON *add_value(cJSON *req, const char *key, const char *value)
{
    if (strcmp(key, "limit") == 0 || strcmp(key, "session") == 0 || strcmp(key, "start") == 0) {
        char *end;
        double d = strtod(value, &end);
        if (*value == '\0' || *end != '\0')
            return admin_error("bad_argument", "\"%s\" must be a number", key);
        cJSON_AddNumberToObject(req, key, d);
    } else {
        cJSON_AddStringToObject(req, key, value);
    }
    return NULL;
}

/*
 * query_args - the query's parameters into req (each once, among allowed: "a, b"); NULL, or the error.
 * Parameters the route does not take are refused, as unknown arguments are.
 */
static cJSON *query_args(const char *query, const char *allowed, cJSON *req)
{
    int count = 0;
    for (const char *p = query; *p != '\0';) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        if (n > 0) {
            if (++count > QUERY_ARGS_MAX)
                return admin_error("bad_argument", "a query has at most %d parameters", QUERY_ARGS_MAX);
            char *key = percent_decode(p, eq ? (size_t)(eq - p) : n, 1);
            char *value = eq ? percent_decode(eq + 1, n - (size_t)(eq + 1 - p), 1) : strdup("");
            cJSON *err = NULL;
            if (key == NULL || value == NULL)
                err = admin_error("bad_request", "a query parameter has a broken %%-escape (or %%00)");
            else if (!admin_listed(allowed, key))
                err = admin_error("bad_argument", "unknown query parameter \"%.64s\" (expected %s%s)", key,
                                  allowed[0] ? "one of: " : "none", allowed);
            else if (cJSON_GetObjectItemCaseSensitive(req, key) != NULL)
                err = admin_error("bad_request", "the query parameter \"%.64s\" appears twice", key);
            else
                err = add_value(req, key, value);
            free(key);
            free(value);
            if (err != NULL)
                return err;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return NULL;
}

/* run - req (taken over) through the command dispatcher; the response comes now, or later (a wait) */
static void run(admin_client *c, cJSON *req)
{
    cJSON *id = admin_request_id(req);
    cJSON *resp = admin_run_request(c, req, id);
    if (resp != NULL)
        admin_respond(c, resp, id);
    cJSON_Delete(req);
}

/* post_command - POST /api/v1/<name>: the body is the request object (empty: {}), the path its "cmd" */
static void post_command(admin_client *c, const http_request *r, const char *name)
{
    cJSON *err = NULL;
    cJSON *req = r->body_len == 0 ? cJSON_CreateObject() : admin_parse_request(r->body, r->body_len, 1, &err);
    if (req == NULL) {
        admin_respond(c, err ? err : admin_error("internal", "out of memory"), NULL);
        return;
    }
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
    if (!cJSON_IsObject(req))
        err =
            admin_error("bad_request", "the body is the request, a JSON object: {\"to\": \"*@example.com\"}");
    else if (cmd != NULL && !(cJSON_IsString(cmd) && strcmp(cmd->valuestring, name) == 0))
        err = admin_error("bad_request",
                          "the path names the command: \"cmd\" in the body must be absent or "
                          "\"%.64s\"",
                          name);
    if (err != NULL) {
        cJSON_Delete(req);
        admin_respond(c, err, NULL);
        return;
    }
    if (cmd == NULL)
        cJSON_AddStringToObject(req, "cmd", name);
    if (strcmp(name, "events.subscribe") == 0)
        admin_http_stream(c);
    /* An HTTP connection is not a session: a scope made over HTTP outlives it unless told otherwise. */
    if (strcmp(name, "scope.create") == 0 && cJSON_GetObjectItemCaseSensitive(req, "keep") == NULL)
        cJSON_AddBoolToObject(req, "keep", 1);
    run(c, req);
}

/* -- special routes ----------------------------------------------------------------------------------- */

/* raw_message - GET messages/{id}/raw: the message as received */
static void raw_message(admin_client *c, const http_request *r, cJSON *req)
{
    (void)r;
    cJSON *err = NULL;
    store_msg *m = admin_find_message(c, req, &err);
    cJSON_Delete(req);
    if (m == NULL)
        admin_respond(c, err, NULL);
    else
        admin_http_send(c, 200, "message/rfc822", NULL, m->body ? m->body : "", m->size);
}

/* add_catalog_entry - one shipped profile: its name, description and rules, or why it is invalid */
static void add_catalog_entry(void *ctx, const char *name, const char *path, const fault_profile *p)
{
    (void)path;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddBoolToObject(o, "valid", p != NULL);
    if (p != NULL) {
        cJSON_AddStringToObject(o, "description", fault_profile_settings(p)->description);
        cJSON_AddNumberToObject(o, "rules", (double)fault_profile_nrules(p));
    }
    cJSON_AddItemToArray(ctx, o);
}

/* catalog - GET profiles: every profile that profile.load's "name" finds */
static void catalog(admin_client *c, const http_request *r, cJSON *req)
{
    (void)r;
    cJSON_Delete(req);
    cJSON *resp = cJSON_CreateObject();
    cJSON_AddBoolToObject(resp, "ok", 1);
    cJSON *list = cJSON_AddArrayToObject(resp, "profiles");
    int n = profiles_catalog(add_catalog_entry, list);
    cJSON_AddNumberToObject(resp, "count", n);
    admin_http_json(c, 200, resp);
}

static void events(admin_client *c, const http_request *r, cJSON *req)
{
    (void)r;
    admin_http_stream(c);
    run(c, req);
}

/* -- the route table ---------------------------------------------------------------------------------- */

typedef void (*route_fn)(admin_client *c, const http_request *r, cJSON *req);

/*
 * A REST route: method, path under /api/v1/ ('*' is one segment, put into the request as key), the
 * command it runs, the query parameters it takes, or a function that runs it instead.
 */
static const struct route {
    int method;
    const char *path;
    const char *key;
    const char *cmd;
    const char *query;
    route_fn fn;
} routes[] = {
    {HTTP_GET, "messages", NULL, "messages.list", "to, from, subject, since, limit, scope", NULL},
    {HTTP_GET, "messages/*", "message", "messages.get", "scope", NULL},
    {HTTP_GET, "messages/*/raw", "message", "messages.get", "scope", raw_message},
    {HTTP_DELETE, "messages/*", "message", "messages.delete", "scope", NULL},
    {HTTP_DELETE, "messages", NULL, "messages.clear", "scope", mailpit_delete},
    {HTTP_GET, "message/latest", NULL, "messages.list", "scope", mailpit_latest},
    {HTTP_GET, "message/*", "message", "messages.get", "scope", mailpit_message},
    {HTTP_GET, "search", NULL, "messages.list", "query, start, limit, scope", mailpit_search},
    {HTTP_GET, "sessions", NULL, "sessions.list", "scope", NULL},
    {HTTP_GET, "sessions/*", "session", "sessions.get", "scope", NULL},
    {HTTP_GET, "profiles", NULL, NULL, "scope", catalog}, /* the same in every scope */
    {HTTP_GET, "profile", NULL, "profile.get", "scope", NULL},
    {HTTP_GET, "stats", NULL, "stats", "scope", NULL},
    {HTTP_GET, "events", NULL, "events.subscribe", "scope", events},
};

/* split - path's segments (at most max) into seg; how many, or -1 when there are more or one is empty */
static int split(char *path, char **seg, int max)
{
    int n = 0;
    for (char *p = path; *p != '\0';) {
        char *slash = strchr(p, '/');
        if (n == max || slash == p)
            return -1;
        seg[n++] = p;
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
        if (*p == '\0')
            return -1; /* a trailing slash */
    }
    return n;
}

/* route_matches - the route's path has the segments seg; *wild is the one '*' stands for */
static int route_matches(const char *pattern, char **seg, int n, const char **wild)
{
    char copy[64];
    snprintf(copy, sizeof(copy), "%s", pattern);
    char *pseg[API_SEGMENTS];
    int pn = split(copy, pseg, API_SEGMENTS);
    if (pn != n)
        return 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(pseg[i], "*") == 0)
            *wild = seg[i];
        else if (strcmp(pseg[i], seg[i]) != 0)
            return 0;
    }
    return 1;
}

/* rest - a route of the table: its request object built from the path and the query, then run */
static void rest(admin_client *c, const http_request *r, const char *rest_path)
{
    char path[256];
    char *seg[API_SEGMENTS];
    int n = strlen(rest_path) < sizeof(path)
                ? (snprintf(path, sizeof(path), "%s", rest_path), split(path, seg, API_SEGMENTS))
                : -1;
    int method = r->method == HTTP_HEAD ? HTTP_GET : r->method;
    const struct route *found = NULL;
    int path_found = 0;
    const char *wild = NULL;
    for (size_t i = 0; n > 0 && i < sizeof(routes) / sizeof(routes[0]) && found == NULL; i++)
        if (route_matches(routes[i].path, seg, n, &wild)) {
            path_found = 1;
            if (routes[i].method == method)
                found = &routes[i];
        }
    if (found == NULL) {
        if (path_found)
            admin_respond(c,
                          admin_error("method_not_allowed", "%s is not a method of %s (POST runs a command)",
                                      http_method_str((enum http_method)r->method), r->path),
                          NULL);
        else
            admin_respond(c,
                          admin_error("not_found", "no route %s %s (docs/http.md lists them)",
                                      http_method_str((enum http_method)r->method), r->path),
                          NULL);
        return;
    }
    cJSON *req = cJSON_CreateObject();
    if (found->cmd != NULL)
        cJSON_AddStringToObject(req, "cmd", found->cmd);
    cJSON *err = query_args(r->query, found->query, req);
    if (err == NULL && found->key != NULL) {
        char *value = percent_decode(wild, strlen(wild), 0);
        if (value == NULL)
            err = admin_error("bad_request", "the path has a broken %%-escape (or %%00)");
        else
            err = add_value(req, found->key, value);
        free(value);
    }
    if (err != NULL) {
        cJSON_Delete(req);
        admin_respond(c, err, NULL);
    } else if (found->fn != NULL) {
        found->fn(c, r, req);
    } else {
        run(c, req);
    }
}

/* health - /healthz: the process answers; /readyz: and its SMTP listeners accept (not stopping) */
static void health(admin_client *c, int ready_check)
{
    server *srv = admin_server(c);
    int open = 0;
    for (size_t i = 0; i < LISTENER_COUNT; i++)
        open |= srv->own.listeners[i].open;
    cJSON *resp;
    if (ready_check && (srv->stopping || !open)) {
        resp = admin_error("unavailable", "%s",
                           srv->stopping ? "the server is stopping" : "no SMTP listener is open");
    } else {
        resp = cJSON_CreateObject();
        cJSON_AddBoolToObject(resp, "ok", 1);
        cJSON_AddStringToObject(resp, "status", ready_check ? "ready" : "alive");
    }
    admin_http_json(c, ready_check && !cJSON_IsTrue(cJSON_GetObjectItem(resp, "ok")) ? 503 : 200, resp);
}

int http_api_public(int method, const char *path)
{
    if (method != HTTP_GET && method != HTTP_HEAD)
        return 0;
    size_t n = strcspn(path, "?#");
    return (n == 8 && strncmp(path, "/healthz", 8) == 0) || (n == 7 && strncmp(path, "/readyz", 7) == 0) ||
           webui_public(path, n);
}

void http_api_handle(admin_client *c, const http_request *r)
{
    const char *path = r->path;
    int get = r->method == HTTP_GET || r->method == HTTP_HEAD;
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
        if (get)
            health(c, path[1] == 'r');
        else
            admin_respond(c, admin_error("method_not_allowed", "%s takes GET", path), NULL);
        return;
    }
    if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) != 0) {
        const webui_file *f = get ? webui_find(path) : NULL;
        if (f != NULL)
            admin_http_send(c, 200, f->type, webui_headers(f), (const char *)f->data, f->len);
        else
            admin_respond(c,
                          admin_error("not_found", "no route %s %s (docs/http.md lists them)",
                                      http_method_str((enum http_method)r->method), path),
                          NULL);
        return;
    }
    const char *rest_path = path + strlen(API_PREFIX);
    if (r->method == HTTP_POST && strchr(rest_path, '/') == NULL && rest_path[0] != '\0') {
        post_command(c, r, rest_path);
        return;
    }
    rest(c, r, rest_path);
}
