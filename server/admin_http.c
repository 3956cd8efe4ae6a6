/*
 * admin_http.c - HTTP/1.1 framing on an admin connection: requests parsed by http-parser (Debian's
 * libhttp-parser), answered in order, one at a time, with the NDJSON side's bounds; responses and
 * Server-Sent Events written through admin.c's bounded output.
 *
 * The parser is paused after each complete request, which then runs outside the parser's callbacks; a
 * deferred one (messages.wait) leaves the rest of the input unparsed until it is answered, as on the NDJSON
 * side. A request is refused before its body is read when its head is too large, its body would be, the
 * token is missing (Authorization: Bearer), or it comes from another site's page (Origin, Host): the
 * client gets an error response and the connection is closed.
 */
#define _GNU_SOURCE /* strcasestr, strncasecmp */

#include "admin_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "admin_cmd.h"
#include "config.h"
#include "event_line.h"
#include "http_api.h"
#include "jsonutil.h"
#include "server.h"
#include "sf_assert.h"

#define HTTP_HEAD_MAX     65536             /* request line and header fields, as a stranger's NDJSON line */
#define HTTP_URL_MAX      8192              /* the request target */
#define HTTP_BODY_MAX     (8 * 1024 * 1024) /* a command's request object, as an NDJSON line */
#define HTTP_BUF_FIRST    1024
#define HTTP_SSE_RETRY_MS 1000 /* EventSource's reconnection delay after the stream ends */

struct admin_http {
    admin_client *c;
    http_parser parser;
    bytebuf url;
    bytebuf fields; /* "name\0value\0" per header field, names in lower case */
    bytebuf body;
    size_t head_bytes;
    int in_value;   /* the last callback was a value: the next name starts a new field */
    int partial;    /* a request has started and is not complete */
    int complete;   /* a whole request waits to run */
    int keep_alive; /* of the request running */
    int head;       /* HEAD: the response without its body */
    int stream;     /* the request running asked for the event stream */
    int streaming;  /* the connection is an event stream now */
    int status;     /* the status of a refusal, over the one its error code gives */
    cJSON *refusal; /* the request is refused before its body */
    unsigned long long events;
};

/* -- responses ---------------------------------------------------------------------------------------- */

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {503, "Service Unavailable"},
};

/* The status of each error code (docs/http.md); a code not listed is 400. */
static const struct {
    const char *code;
    int status;
} statuses[] = {
    {"unauthorized", 401},         {"forbidden", 403},          {"not_found", 404},
    {"unknown_command", 404},      {"method_not_allowed", 405}, {"timeout", 408},
    {"line_too_long", 413},        {"too_large", 413},          {"invalid_profile", 422},
    {"too_many_subscribers", 429}, {"too_many_scopes", 429},    {"internal", 500},
    {"too_many_clients", 503},     {"unavailable", 503},
};

static const char *reason_of(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Error";
}

/* status_of - 200 for {"ok": true}, else the status of its error code */
static int status_of(const cJSON *out)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(out, "ok")))
        return 200;
    const cJSON *code =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(out, "error"), "code");
    for (size_t i = 0; cJSON_IsString(code) && i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcmp(statuses[i].code, code->valuestring) == 0)
            return statuses[i].status;
    return 400;
}

static char *copy_bytes(const char *p, size_t len)
{
    char *d = malloc(len ? len : 1);
    if (d != NULL && len > 0)
        memcpy(d, p, len);
    return d;
}

/* send_head - the status line and header fields of a response with a body of len bytes */
static void send_head(admin_client *c, int status, const char *ctype, const char *headers, size_t len)
{
    admin_http *h = admin_client_http(c);
    char head[1024];
    int n =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                 "X-Content-Type-Options: nosniff\r\n%s%s%s\r\n",
                 status, reason_of(status), ctype, len, status == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
                 headers ? headers : "", h->keep_alive ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof(head))
        n = 0;
    char *d = copy_bytes(head, (size_t)n);
    if (d != NULL)
        admin_client_send(c, d, (size_t)n);
}

/* send_body - body (taken over) after its head; then the connection ends when the request asked so */
static void send_body(admin_client *c, char *body, size_t len)
{
    admin_http *h = admin_client_http(c);
    if (h->head || len == 0)
        free(body);
    else if (body != NULL)
        admin_client_send(c, body, len);
    if (!h->keep_alive)
        admin_client_finish(c);
}

void admin_http_send(admin_client *c, int status, const char *ctype, const char *headers, const char *body,
                     size_t len)
{
    cJSON *refusal = admin_output_check(c, len);
    if (refusal != NULL) {
        admin_respond(c, refusal, NULL);
        return;
    }
    send_head(c, status, ctype, headers, len);
    send_body(c, copy_bytes(body, len), len);
}

void admin_http_json(admin_client *c, int status, cJSON *obj)
{
    char *text = json_print(obj);
    cJSON_Delete(obj);
    size_t len = text ? strlen(text) : 0;
    cJSON *refusal = text ? admin_output_check(c, len + 1) : admin_error("internal", "out of memory");
    if (refusal != NULL) {
        cJSON_free(text);
        admin_respond(c, refusal, NULL);
        return;
    }
    text[len] = '\n'; /* json_print's NUL: the body ends with a newline, as a command's does */
    send_head(c, status, "application/json", NULL, len + 1);
    send_body(c, text, len + 1);
}

void admin_http_stream(admin_client *c)
{
    admin_client_http(c)->stream = 1;
}

void admin_http_response(admin_client *c, const cJSON *out, char *text, size_t len)
{
    admin_http *h = admin_client_http(c);
    int status = h->status ? h->status : status_of(out);
    h->status = 0;
    if (h->stream && status == 200) {
        /* events: the stream starts; each event is one "data:" line with an id. It ends with the connection.
         */
        h->stream = 0;
        h->streaming = 1;
        h->keep_alive = 1;
        free(text);
        char head[256];
        int n = snprintf(
            head, sizeof(head),
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\nretry: %d\n: subscribed\n\n",
            HTTP_SSE_RETRY_MS);
        char *d = copy_bytes(head, (size_t)n);
        if (d != NULL)
            admin_client_send(c, d, (size_t)n);
        return;
    }
    h->stream = 0;
    text[len] = '\n'; /* json_print's NUL: the body ends with a newline, as the NDJSON line does */
    send_head(c, status, "application/json", NULL, len + 1);
    send_body(c, text, len + 1);
}

void admin_http_event(admin_client *c, const char *line, size_t len)
{
    admin_http *h = admin_client_http(c);
    if (!h->streaming)
        return;
    /* One copy of "id: N\ndata: LINE\n\n" into the output: a stream takes a dozen lines per SMTP session. */
    static const char data[] = "\ndata: ";
    char sse[EVENT_LINE_MAX + EVENT_U64_DIGITS + 16];
    size_t n = 4;
    memcpy(sse, "id: ", n);
    n += event_u64(sse + n, ++h->events);
    memcpy(sse + n, data, sizeof(data) - 1);
    n += sizeof(data) - 1;
    SF_ASSERT(len <= EVENT_LINE_MAX); /* lines come from event_line */
    memcpy(sse + n, line, len);
    n += len;
    memcpy(sse + n, "\n\n", 2);
    admin_client_send_copy(c, sse, n + 2);
}

/* refuse_request - err (taken over) answers the request before its body; the connection then closes */
static void refuse_request(admin_client *c, int status, cJSON *err)
{
    admin_http *h = admin_client_http(c);
    h->keep_alive = 0;
    h->status = status;
    admin_respond(c, err, NULL);
    admin_client_finish(c);
}

/* -- parsing ------------------------------------------------------------------------------------------- */

static int count_head(admin_http *h, size_t len)
{
    h->head_bytes += len;
    if (h->head_bytes <= HTTP_HEAD_MAX)
        return 0;
    h->status = 431;
    h->refusal = admin_error("line_too_long", "a request's line and header fields are at most %d bytes",
                             HTTP_HEAD_MAX);
    http_parser_pause(&h->parser, 1);
    return 0;
}

/* reuse - empty b for the next request; memory a large one grew it to is given back */
static void reuse(bytebuf *b)
{
    if (b->cap > b->initial)
        bytebuf_release(b);
    b->len = 0;
}

static int on_message_begin(http_parser *p)
{
    admin_http *h = p->data;
    reuse(&h->url);
    reuse(&h->fields);
    reuse(&h->body);
    h->head_bytes = 0;
    h->in_value = 0;
    h->partial = 1;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    admin_http *h = p->data;
    if (h->url.len + len > HTTP_URL_MAX) {
        h->status = 414;
        h->refusal = admin_error("line_too_long", "a request target is at most %d bytes", HTTP_URL_MAX);
        http_parser_pause(p, 1);
        return 0;
    }
    (void)bytebuf_append(&h->url, at, len);
    return count_head(h, len);
}

/* field_end - a value has been read: it ends with a NUL, as its name does */
static void field_end(admin_http *h)
{
    if (h->in_value)
        (void)bytebuf_append(&h->fields, "", 1);
    h->in_value = 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    admin_http *h = p->data;
    field_end(h);
    if (count_head(h, len) != 0 || h->refusal != NULL)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = at[i] >= 'A' && at[i] <= 'Z' ? (char)(at[i] - 'A' + 'a') : at[i];
        (void)bytebuf_append(&h->fields, &ch, 1);
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    admin_http *h = p->data;
    if (!h->in_value) {
        (void)bytebuf_append(&h->fields, "", 1); /* the name's end */
        h->in_value = 1;
    }
    if (count_head(h, len) != 0 || h->refusal != NULL)
        return 0;
    (void)bytebuf_append(&h->fields, at, len);
    return 0;
}

/* header - the value of the first field named name (lower case), or NULL */
static const char *header(const admin_http *h, const char *name)
{
    if (h->fields.data == NULL)
        return NULL;
    const char *p = h->fields.data, *end = p + h->fields.len;
    while (p != NULL && p < end) {
        const char *value = memchr(p, '\0', (size_t)(end - p));
        if (value == NULL || ++value >= end)
            return NULL;
        if (strcmp(p, name) == 0)
            return value;
        p = memchr(value, '\0', (size_t)(end - value));
        if (p != NULL)
            p++;
    }
    return NULL;
}

/* bearer - the token of an "Authorization: Bearer TOKEN" field, or NULL */
static const char *bearer(const admin_http *h)
{
    const char *v = header(h, "authorization");
    if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
        return NULL;
    v += 7;
    while (*v == ' ')
        v++;
    return v;
}

/* host_part - the host of an authority ("[::1]:2580", "localhost:2580") in out, without brackets and port */
static void host_part(const char *authority, char *out, size_t outsz)
{
    const char *start = authority, *end;
    if (*start == '[') {
        start++;
        end = strchr(start, ']');
    } else {
        end = strchr(start, ':');
    }
    size_t n = end ? (size_t)(end - start) : strlen(start);
    snprintf(out, outsz, "%.*s", (int)(n < outsz ? n : outsz - 1), start);
}

/*
 * cross_site - the request comes from another site's page in a browser: its Origin is not the Host it was
 * sent to (a page elsewhere posting to the admin port), or, on a loopback port without a token, its Host
 * is not a loopback name (a DNS-rebinding page). Tools (curl, test clients) send no Origin.
 */
static const char *cross_site(const admin_http *h, const config *cfg)
{
    const char *host = header(h, "host"), *origin = header(h, "origin");
    if (origin != NULL) {
        const char *auth = strstr(origin, "://");
        if (host == NULL || auth == NULL || strcasecmp(auth + 3, host) != 0)
            return "the request comes from a page of another site (its Origin is not the Host it was sent "
                   "to)";
    }
    if (host != NULL && cfg->admin_token == NULL && !cfg->admin_remote) {
        char name[256];
        host_part(host, name, sizeof(name));
        if (strcasecmp(name, "localhost") != 0 && !config_host_is_loopback(name))
            return "without --admin-token, the admin port answers only requests sent to a loopback name "
                   "(Host: 127.0.0.1, localhost, [::1])";
    }
    return NULL;
}

static int on_headers_complete(http_parser *p)
{
    admin_http *h = p->data;
    admin_client *c = h->c;
    field_end(h);
    if (h->refusal != NULL)
        return 0;
    (void)bytebuf_append(&h->url, "", 1);
    const config *cfg = admin_server(c)->cfg;
    const char *why = cross_site(h, cfg);
    if (p->http_major != 1) {
        h->refusal = admin_error("bad_request", "the admin port speaks HTTP/1.1 (and 1.0), not HTTP/%u.%u",
                                 p->http_major, p->http_minor);
    } else if (why != NULL) {
        h->status = 403;
        h->refusal = admin_error("forbidden", "%s", why);
    } else if (!http_api_public(p->method, h->url.data) && !admin_client_token_ok(c, bearer(h))) {
        h->refusal =
            admin_error("unauthorized", "this admin port needs \"Authorization: Bearer TOKEN\" in every "
                                        "request (--admin-token)");
    } else if ((p->flags & F_CONTENTLENGTH) && p->content_length > HTTP_BODY_MAX) {
        h->status = 413;
        h->refusal = admin_error("line_too_long", "a request body is at most %d bytes", HTTP_BODY_MAX);
    }
    if (h->refusal != NULL) {
        http_parser_pause(p, 1);
        return 0;
    }
    const char *expect = header(h, "expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        char *d = copy_bytes(cont, sizeof(cont) - 1);
        if (d != NULL)
            admin_client_send(c, d, sizeof(cont) - 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    admin_http *h = p->data;
    if (h->refusal != NULL)
        return 0;
    if (bytebuf_append(&h->body, at, len) != 0) {
        h->status = 413;
        h->refusal = admin_error("line_too_long", "a request body is at most %d bytes", HTTP_BODY_MAX);
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    admin_http *h = p->data;
    if (h->refusal != NULL)
        return 0;
    h->complete = 1;
    h->partial = 0;
    h->keep_alive = http_should_keep_alive(p);
    h->head = p->method == HTTP_HEAD;
    http_parser_pause(p, 1); /* one request at a time: it runs after http_parser_execute returns */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* run_request - the complete request in h: split its target and hand it to the routes */
static void run_request(admin_client *c, admin_http *h)
{
    if (bytebuf_append(&h->body, "", 1) != 0) {
        admin_respond(c, admin_error("internal", "out of memory"), NULL);
        return;
    }
    char *target = h->url.data, *query = strchr(target, '?');
    if (query != NULL)
        *query++ = '\0';
    char *fragment = strchr(query ? query : target, '#');
    if (fragment != NULL)
        *fragment = '\0';
    http_request r = {
        .method = (int)h->parser.method,
        .path = target,
        .query = query ? query : "",
        .body = h->body.data,
        .body_len = h->body.len - 1,
    };
    http_api_handle(c, &r);
}

void admin_http_process(admin_client *c)
{
    admin_http *h = admin_client_http(c);
    bytebuf *in = admin_client_input(c);
    while (!admin_client_busy(c) && !h->streaming && in->len > 0) {
        size_t n = http_parser_execute(&h->parser, &settings, in->data, in->len);
        enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
        bytebuf_consume(in, n);
        if (h->refusal != NULL) {
            cJSON *err = h->refusal;
            h->refusal = NULL;
            h->partial = 0;
            refuse_request(c, h->status, err);
            return;
        }
        if (e == HPE_PAUSED) {
            http_parser_pause(&h->parser, 0);
            if (h->complete) {
                h->complete = 0;
                run_request(c, h);
            }
        } else if (e != HPE_OK) {
            h->partial = 0;
            refuse_request(
                c, 400, admin_error("bad_request", "not an HTTP/1.1 request: %s", http_errno_description(e)));
            return;
        } else if (n == 0) {
            break;
        }
    }
    if (h->streaming)
        bytebuf_consume(in, in->len); /* an event stream reads nothing more */
}

int admin_http_partial(const admin_http *h)
{
    return h != NULL && h->partial;
}

admin_http *admin_http_new(admin_client *c)
{
    admin_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->c = c;
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    bytebuf_init(&h->url, HTTP_BUF_FIRST, HTTP_URL_MAX + 1);
    bytebuf_init(&h->fields, HTTP_BUF_FIRST, 2 * HTTP_HEAD_MAX); /* each byte may come with a NUL */
    bytebuf_init(&h->body, HTTP_BUF_FIRST, HTTP_BODY_MAX + 1);
    return h;
}

void admin_http_free(admin_http *h)
{
    if (h == NULL)
        return;
    bytebuf_release(&h->url);
    bytebuf_release(&h->fields);
    bytebuf_release(&h->body);
    cJSON_Delete(h->refusal);
    free(h);
}
