/*
 * admin.c - the admin socket's transport: listeners (TCP and unix), clients, line framing, responses in
 * order, deferred waits and event streams. The commands themselves are in admin_cmd.c.
 *
 * Every client handle is closed through admin_client_close() and freed when its last handle's close
 * callback runs. Input is framed into lines of at most ADMIN_LINE_MAX bytes; a longer line is answered
 * with line_too_long and skipped up to its newline. Small output lines gather into writes of up to
 * ADMIN_OUT_CHUNK, sent before the loop next waits. Output is bounded in the bytes it really holds (each
 * write's allocation and bookkeeping): a client that lets more than ADMIN_WRITE_MAX queue up (an events
 * subscriber that stopped reading) is disconnected; a response over ADMIN_RESPONSE_MAX is refused, and one
 * that would take the output of all clients past ADMIN_OUTPUT_TOTAL_MAX is refused until the others have read
 * theirs. No client can make the server hold unbounded memory.
 */
#define _GNU_SOURCE /* FNM_CASEFOLD */

#include "admin.h"

#include <fnmatch.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <time.h>

#include "admin_cmd.h"
#include "admin_http.h"
#include "bytebuf.h"
#include "event_line.h"
#include "jsonutil.h"
#include "log.h"
#include "mime.h"
#include "server.h"
#include "utf8.h"

#define ADMIN_LINE_MAX         (8 * 1024 * 1024) /* one request: an inline profile (4 MiB) with room to spare */
#define ADMIN_WRITE_MAX        (16 * 1024 * 1024)  /* queued output per client before it is dropped */
#define ADMIN_RESPONSE_MAX     (128 * 1024 * 1024) /* one response: messages.get raw of a 35 MiB message */
#define ADMIN_OUTPUT_TOTAL_MAX (128 * 1024 * 1024) /* responses over ADMIN_WRITE_MAX queued, all clients */
#define ADMIN_SUBSCRIBERS_MAX  16
/* What a queued line costs beyond its bytes: the write request and two allocations' headers. */
#define ADMIN_WRITE_OVERHEAD  (sizeof(write_req) + 2 * 32)
#define ADMIN_OUT_CHUNK       65536 /* small lines gather into writes of up to this */
#define ADMIN_OUT_FIRST       1024  /* the gathering buffer's first allocation */
#define ADMIN_STREAM_FLUSH_MS 10    /* an event stream's lines are written at most this late */
#define ADMIN_READ_BUFFER     65536
/* Input held: a partial line within ADMIN_LINE_MAX, one read, and the newline added at end of input. */
#define ADMIN_IN_FIRST 4096 /* an idle client keeps no more than this */
#define ADMIN_IN_MAX   (ADMIN_LINE_MAX + ADMIN_READ_BUFFER + 1)
#define ADMIN_BACKLOG  64
/* Before a connection has shown the token (when one is set): what a stranger may make the server hold. */
#define ADMIN_PRETOKEN_LINE_MAX    65536 /* a longer line must hold the token in these first bytes */
#define ADMIN_PARTIAL_LINE_IDLE_MS 10000 /* a started line that gets no byte this long is dropped */
#define ADMIN_REFUSED_LINGER_MS    2000 /* a refused client's input is dropped for this long, then it closes */
#define ADMIN_PRETOKEN_ID_MAX      64   /* a stranger's "id" is echoed only up to this many bytes */
#define ADMIN_PRETOKEN_OUT_MAX     65536 /* output queued for a connection that has not shown the token */
#define ADMIN_SUBJECT_MAX          998 /* the Subject a "subject" glob is matched against (a line's length) */

typedef union admin_handle {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} admin_handle;

typedef struct admin_listener {
    admin *a;
    admin_handle h;
    int open;
    int is_unix;
    char bound[CONFIG_ADMIN_PATH_MAX + 8];
    char host[CONFIG_HOST_MAX];
    int port;
} admin_listener;

struct admin_client {
    admin *a;
    admin_handle h;
    uv_timer_t timer;      /* messages.wait's timeout */
    uv_timer_t idle_timer; /* a partial line that stopped growing; a refused client's linger */
    uv_shutdown_t shutdown;
    int handles_open;
    int closing;
    LIST_ENTRY(admin_client) link; /* in admin.clients */
    bytebuf in;                    /* input not yet framed into requests (bounded by ADMIN_IN_MAX) */
    int discarding;                /* an over-long line is being skipped to its newline */
    int authed;     /* a request with the right token came (or no token is set): long lines are allowed */
    int line_token; /* the line being framed holds the token in its first ADMIN_PRETOKEN_LINE_MAX bytes */
    int refused;    /* answered with a last error and shut down: its input is dropped until it goes quiet */
    int subscribed;
    scope *sub_scope; /* whose events it gets */
    int waiting;      /* a messages.wait holds the queue */
    int eof;          /* the client shut its side: answer what it sent, then close */
    int started;      /* a byte has come: the connection speaks NDJSON, or HTTP when http is set */
    admin_http *http;
    bytebuf out;   /* lines gathered for the next write (at most ADMIN_OUT_CHUNK bytes) */
    int writes;    /* write requests not completed yet */
    size_t queued; /* bytes those hold, ADMIN_WRITE_OVERHEAD each included */
    cJSON *wait_id;
    admin_filter filter;
};

struct admin {
    server *srv;
    admin_listener listeners[CONFIG_ADMIN_MAX];
    size_t nlisteners;
    LIST_HEAD(admin_clients, admin_client) clients; /* newest first */
    size_t nclients;
    size_t nsubscribers;
    size_t queued;     /* every client's */
    size_t big_queued; /* of that, responses over ADMIN_WRITE_MAX */
    uv_idle_t flush;   /* runs once gathered output waits: writes it before the loop waits */
    int flush_open;
    uv_timer_t stream_flush; /* event streams' gathered lines, written every ADMIN_STREAM_FLUSH_MS */
    int stream_flush_open;
    char read_buf[ADMIN_READ_BUFFER];
};

static void process_lines(admin_client *c);
static void close_if_done(admin_client *c);

server *admin_server(const admin_client *c)
{
    return c->a->srv;
}

/* -- clients: lifetime ------------------------------------------------------------------------------ */

static void filter_free(admin_filter *f)
{
    free(f->to);
    free(f->from);
    free(f->subject);
    memset(f, 0, sizeof(*f));
}

static void on_client_closed(uv_handle_t *h)
{
    admin_client *c = h->data;
    if (--c->handles_open > 0)
        return;
    admin *a = c->a;
    a->nclients--;
    LIST_REMOVE(c, link);
    cJSON_Delete(c->wait_id);
    filter_free(&c->filter);
    bytebuf_release(&c->in);
    bytebuf_release(&c->out);
    admin_http_free(c->http);
    free(c);
}

static void admin_client_close(admin_client *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (why != NULL)
        log_server(LOG_INFO, "admin: closing a client: %s", why);
    if (c->subscribed)
        c->a->nsubscribers--;
    c->subscribed = 0;
    scope_owner_gone(c->a->srv, c); /* a crashed test leaves no scope behind */
    uv_close(&c->h.handle, on_client_closed);
    uv_close((uv_handle_t *)&c->timer, on_client_closed);
    uv_close((uv_handle_t *)&c->idle_timer, on_client_closed);
}

/* -- output --------------------------------------------------------------------------------------------- */

typedef struct write_req {
    uv_write_t req;
    char *data;
    size_t cost; /* counted in queued */
} write_req;

static const char newline[] = "\n";

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    admin_client *c = req->handle->data;
    c->queued -= w->cost;
    c->a->queued -= w->cost;
    if (w->cost > ADMIN_WRITE_MAX)
        c->a->big_queued -= w->cost;
    free(w->data);
    free(w);
    c->writes--;
    if (status < 0 && status != UV_ECANCELED)
        admin_client_close(c, NULL);
    else
        close_if_done(c);
}

/*
 * submit - len bytes of data (taken over; its allocation is size bytes), and a newline when nl, as one
 * write to the client
 */
static void submit(admin_client *c, char *data, size_t len, size_t size, int nl)
{
    if (c->closing) {
        free(data);
        return;
    }
    if (c->queued > ADMIN_WRITE_MAX) {
        free(data);
        admin_client_close(c, "it does not read its responses (more than 16 MiB queued)");
        return;
    }
    if (!c->authed && c->queued > ADMIN_PRETOKEN_OUT_MAX) {
        /* A stranger pipelining requests it never reads the refusals of. */
        free(data);
        admin_client_close(c, "it does not read its responses and has not shown the token (more than 64 KiB "
                              "queued)");
        return;
    }
    write_req *w = malloc(sizeof(*w));
    if (w == NULL) {
        free(data);
        admin_client_close(c, "out of memory");
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(data, (unsigned)len), uv_buf_init((char *)newline, 1)};
    if (uv_write(&w->req, &c->h.stream, bufs, nl ? 2 : 1, on_write) != 0) {
        free(data);
        free(w);
        admin_client_close(c, NULL);
        return;
    }
    w->data = data;
    w->cost = size + ADMIN_WRITE_OVERHEAD;
    c->writes++;
    c->queued += w->cost;
    c->a->queued += w->cost;
    if (w->cost > ADMIN_WRITE_MAX)
        c->a->big_queued += w->cost;
}

/* flush_output - the lines gathered for the client, as one write */
static void flush_output(admin_client *c)
{
    if (c->out.len == 0)
        return;
    char *data = c->out.data;
    size_t len = c->out.len, size = c->out.cap;
    bytebuf_init(&c->out, ADMIN_OUT_FIRST, ADMIN_OUT_CHUNK); /* the write request owns data now */
    submit(c, data, len, size, 0);
}

static void on_stream_flush(uv_timer_t *t)
{
    admin *a = t->data;
    for (admin_client *c = LIST_FIRST(&a->clients), *next; c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (c->subscribed)
            flush_output(c);
    }
}

/*
 * on_flush - before the loop waits: the gathered output of every client, except event streams', which
 * wait for the stream timer: at thousands of sessions a second, one write per loop turn and stream cost
 * SMTP more than the events are worth. A stream's lines are at most ADMIN_STREAM_FLUSH_MS late.
 */
static void on_flush(uv_idle_t *h)
{
    admin *a = h->data;
    uv_idle_stop(h);
    int streams = 0;
    for (admin_client *c = LIST_FIRST(&a->clients), *next; c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (c->subscribed && c->out.len > 0)
            streams = 1;
        else
            flush_output(c);
    }
    if (streams && a->stream_flush_open && !uv_is_active((uv_handle_t *)&a->stream_flush))
        uv_timer_start(&a->stream_flush, on_stream_flush, ADMIN_STREAM_FLUSH_MS, 0);
}

/*
 * queue_out - len bytes of text for the client, and a newline when nl; owned: text is taken over. Small
 * outputs gather into writes of up to ADMIN_OUT_CHUNK, sent before the loop next waits: 100,000 pipelined
 * pings cost a few writes, not 100,000 write requests. A longer one is a write of its own, in order.
 */
static void queue_out(admin_client *c, char *text, size_t len, int owned, int nl)
{
    size_t total = len + (nl ? 1 : 0);
    if (!c->closing && total > ADMIN_OUT_CHUNK) {
        flush_output(c);
        char *data = owned ? text : malloc(len);
        if (data != NULL && !owned)
            memcpy(data, text, len);
        if (data == NULL)
            admin_client_close(c, "out of memory");
        else
            submit(c, data, len, len, nl);
        return;
    }
    if (!c->closing && c->out.len + total > ADMIN_OUT_CHUNK)
        flush_output(c);
    /* Grown by doubling: what a write holds is at most twice what it sends, and counted whole. */
    if (!c->closing && bytebuf_reserve(&c->out, total) != 0)
        admin_client_close(c, "out of memory");
    if (!c->closing) {
        (void)bytebuf_append(&c->out, text, len);
        if (nl)
            (void)bytebuf_append(&c->out, "\n", 1);
        uv_idle_start(&c->a->flush, on_flush);
    }
    if (owned)
        free(text);
}

/* queue_line - a line of len bytes (without its newline), as queue_out */
static void queue_line(admin_client *c, char *text, size_t len, int owned)
{
    queue_out(c, text, len, owned, 1);
}

/*
 * too_big - the error that replaces a response that costs len, or NULL when it may be queued. A response
 * over ADMIN_WRITE_MAX waits for no other: it is refused while other such responses, unread, would take
 * the total past ADMIN_OUTPUT_TOTAL_MAX. Smaller ones are bounded by each client's ADMIN_WRITE_MAX.
 */
static cJSON *too_big(const admin_client *c, size_t len)
{
    if (len > ADMIN_RESPONSE_MAX)
        return admin_error("too_large", "the response would be %zu bytes, over the %d a response may take",
                           len, ADMIN_RESPONSE_MAX);
    size_t others = c->a->big_queued;
    if (len > ADMIN_WRITE_MAX && others > 0 && others + len > ADMIN_OUTPUT_TOTAL_MAX)
        return admin_error("unavailable",
                           "the response would be %zu bytes, and %zu bytes of large responses are queued for "
                           "clients that have not read them yet (at most %d in all): retry later",
                           len, others, ADMIN_OUTPUT_TOTAL_MAX);
    return NULL;
}

/* respond - send obj (taken over) with the request's id first */
static void respond(admin_client *c, cJSON *obj, cJSON *id)
{
    cJSON *out = cJSON_CreateObject();
    if (out == NULL) {
        cJSON_Delete(obj);
        cJSON_Delete(id);
        return;
    }
    cJSON_AddItemToObject(out, "id", id ? id : cJSON_CreateNull());
    /* Move obj's members after "id", so that the id reads first. */
    while (obj != NULL && obj->child != NULL) {
        cJSON *item = cJSON_DetachItemViaPointer(obj, obj->child);
        cJSON_AddItemToObject(out, item->string, item);
    }
    cJSON_Delete(obj);
    char *text = json_print(out);
    cJSON *refusal = text ? too_big(c, strlen(text) + 1 + ADMIN_WRITE_OVERHEAD) : NULL;
    if (refusal != NULL) {
        cJSON_free(text);
        cJSON *idv = cJSON_DetachItemFromObjectCaseSensitive(out, "id");
        cJSON_Delete(out);
        respond(c, refusal, idv);
        return;
    }
    if (text != NULL && c->http != NULL)
        admin_http_response(c, out, text, strlen(text)); /* framed as an HTTP response or an event stream */
    else if (text != NULL)
        queue_line(c, text, strlen(text), 1);
    cJSON_Delete(out);
}

/* -- requests --------------------------------------------------------------------------------------- */

static const char *request_token(const cJSON *req)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "token");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* id_copy - the request's id for its response. cJSON prints a number with 15 digits when that reads back
 * "close enough" (a relative epsilon), which changed ids such as 1234567890123456: print it with as many
 * digits as it takes to read back the same double. */
static cJSON *id_copy(const cJSON *idv)
{
    if (!cJSON_IsNumber(idv) || !isfinite(idv->valuedouble))
        return cJSON_Duplicate(idv, 1);
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof(text), "%.*g", digits, idv->valuedouble);
        if (strtod(text, NULL) == idv->valuedouble)
            break;
    }
    return cJSON_CreateRaw(text);
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/*
 * duplicate_key - a key that appears twice in the request object (which one counts would be a guess).
 * Sorted, so that a request of a million keys costs n log n, not n squared. *oom set when out of memory.
 */
static const char *duplicate_key(const cJSON *req, int *oom)
{
    size_t n = 0;
    for (const cJSON *k = req->child; k != NULL; k = k->next)
        n++;
    if (n < 2)
        return NULL;
    const cJSON **keys = malloc(n * sizeof(*keys));
    if (keys == NULL) {
        *oom = 1;
        return NULL;
    }
    n = 0;
    for (const cJSON *k = req->child; k != NULL; k = k->next)
        keys[n++] = k;
    qsort(keys, n, sizeof(*keys), compare_keys);
    const char *dup = NULL;
    for (size_t i = 1; i < n && dup == NULL; i++)
        if (strcmp(keys[i - 1]->string, keys[i]->string) == 0)
            dup = keys[i]->string;
    free(keys);
    return dup;
}

/*
 * has_nul_escape - the JSON text holds \u0000 in a string. cJSON decodes it into a NUL that ends the C
 * string, so "<token>\u0000x" read as the token and "ping\u0000x" as ping: no admin string may hold one.
 */
static int has_nul_escape(const char *json, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (json[i] != '\\')
            continue;
        if (json[i + 1] == 'u' && i + 5 < len && memcmp(json + i + 2, "0000", 4) == 0)
            return 1;
        i++; /* the escaped character, which may be a backslash */
    }
    return 0;
}

/* same_token - the request's token is the server's, compared in constant time */
static int same_token(const char *given, const char *want)
{
    if (given == NULL)
        return 0;
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char diff = (unsigned char)(gl != wl);
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)(want[i] ^ (i < gl ? given[i] : 0));
    return diff == 0;
}

cJSON *admin_parse_request(const char *line, size_t len, int multiline, cJSON **err)
{
    if (!utf8_valid(line, len)) {
        /* JSON text is UTF-8 (RFC 8259 8.1); cJSON would take the bytes, and echo them in the response. */
        *err = admin_error("invalid_json", "the request is not valid JSON (not UTF-8)");
        return NULL;
    }
    /* Control characters are never JSON (in strings they are escaped), but cJSON skips them as blanks
     * ("\0{...}" was a request) and keeps them in strings (a NUL cut "pi\0ng" to "pi"). Tabs may pass. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t' && line[i] != '\r' &&
            !(multiline && line[i] == '\n')) {
            *err = admin_error("invalid_json",
                               "the request is not valid JSON (control character 0x%02x at byte %zu)",
                               (unsigned)(unsigned char)line[i], i + 1);
            return NULL;
        }
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    /* One value per line: what follows it (a second request, garbage) would otherwise be ignored. */
    while (req != NULL && end < line + len &&
           (*end == ' ' || *end == '\t' || (multiline && (*end == '\r' || *end == '\n'))))
        end++;
    if (req != NULL && end < line + len) {
        cJSON_Delete(req);
        req = NULL;
    }
    if (req == NULL) {
        size_t at = end ? (size_t)(end - line) : 0;
        *err = admin_error("invalid_json", "the request is not valid JSON (at byte %zu)", at + 1);
        return NULL;
    }
    if (has_nul_escape(line, len)) {
        cJSON_Delete(req);
        *err = admin_error("bad_request", "a string in the request holds \\u0000 (NUL), which none may");
        return NULL;
    }
    return req;
}

cJSON *admin_run_request(admin_client *c, const cJSON *req, cJSON *id)
{
    const char *dup = NULL;
    int oom = 0;
    if (!cJSON_IsObject(req))
        return admin_error("bad_request", "a request is a JSON object: {\"cmd\": \"ping\"}");
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(req, "cmd")))
        return admin_error("bad_request", "the request has no \"cmd\" string");
    if ((dup = duplicate_key(req, &oom)) != NULL)
        return admin_error("bad_request", "the key \"%.64s\" appears twice in the request", dup);
    if (oom)
        return admin_error("internal", "out of memory");
    return admin_command(c, req, id);
}

/* handle_line - one request line */
static void handle_line(admin_client *c, const char *line, size_t len)
{
    cJSON *resp = NULL;
    cJSON *req = admin_parse_request(line, len, 0, &resp);
    if (req == NULL) {
        respond(c, resp, NULL);
        return;
    }
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(req, "id");
    cJSON *id = idv ? id_copy(idv) : NULL;
    const config *cfg = c->a->srv->cfg;
    /* The token first: a request without it costs no more than its parse, whatever its shape. */
    int token_ok =
        cJSON_IsObject(req) && (cfg->admin_token == NULL || same_token(request_token(req), cfg->admin_token));
    if (token_ok)
        c->authed = 1;
    else if (id != NULL) {
        /* A stranger's id is echoed only when short: its refusals cost the server little to queue. */
        char *printed = cJSON_PrintUnformatted(id);
        if (printed == NULL || strlen(printed) > ADMIN_PRETOKEN_ID_MAX) {
            cJSON_Delete(id);
            id = NULL;
        }
        cJSON_free(printed);
    }
    if (cJSON_IsObject(req) && !token_ok)
        resp =
            admin_error("unauthorized", "this admin socket needs \"token\" in every request (--admin-token)");
    else
        resp = admin_run_request(c, req, id);
    if (resp != NULL)
        respond(c, resp, id);
    cJSON_Delete(req);
}

static void on_refused_shutdown(uv_shutdown_t *req, int status)
{
    (void)req, (void)status; /* the linger timer closes the connection either way */
}

static void on_linger_end(uv_timer_t *t)
{
    admin_client_close(t->data, NULL);
}

/*
 * hang_up - the server is done with c: what is queued goes, followed by a FIN. What the client still sends
 * is read and dropped, so that closing does not reset the connection under the last lines; it is closed at
 * its EOF, or ADMIN_REFUSED_LINGER_MS later, whatever it still sends.
 */
static void hang_up(admin_client *c)
{
    c->refused = 1;
    if (c->subscribed)
        c->a->nsubscribers--;
    c->subscribed = 0;
    flush_output(c); /* before the FIN */
    if (c->closing)
        return;
    if (uv_shutdown(&c->shutdown, &c->h.stream, on_refused_shutdown) != 0) {
        admin_client_close(c, NULL);
        return;
    }
    uv_timer_start(&c->idle_timer, on_linger_end, ADMIN_REFUSED_LINGER_MS, 0);
}

/* refuse - resp (taken over) is the client's last response, then hang_up */
static void refuse(admin_client *c, cJSON *resp)
{
    respond(c, resp, NULL);
    hang_up(c);
}

/*
 * line_allowed - a line of len bytes so far (p) may be held: within ADMIN_LINE_MAX, and before the
 * connection has shown the token, within ADMIN_PRETOKEN_LINE_MAX unless the token is in its first bytes (a
 * stranger makes the server hold and parse little). Refuses the client otherwise.
 */
static int line_allowed(admin_client *c, const char *p, size_t len)
{
    const char *token = c->a->srv->cfg->admin_token;
    if (c->authed || token == NULL || len <= ADMIN_PRETOKEN_LINE_MAX)
        return 1;
    if (!c->line_token)
        c->line_token = memmem(p, ADMIN_PRETOKEN_LINE_MAX, token, strlen(token)) != NULL;
    if (c->line_token)
        return 1;
    refuse(c,
           admin_error("line_too_long",
                       "until a request has carried the token, a request line is at most %d bytes, or holds "
                       "the token in its first %d bytes",
                       ADMIN_PRETOKEN_LINE_MAX, ADMIN_PRETOKEN_LINE_MAX));
    return 0;
}

/* process_lines - run the complete lines in the input, unless a wait holds the queue */
static void process_lines(admin_client *c)
{
    if (c->http != NULL) {
        if (!c->closing && !c->waiting && !c->refused)
            admin_http_process(c); /* HTTP requests, framed by admin_http.c */
        return;
    }
    size_t off = 0;
    while (!c->closing && !c->waiting && !c->refused && off < c->in.len) {
        char *p = c->in.data + off;
        size_t avail = c->in.len - off;
        char *nl = memchr(p, '\n', avail);
        if (c->discarding) {
            off = nl ? (size_t)(nl - c->in.data) + 1 : c->in.len;
            c->discarding = nl == NULL;
            continue;
        }
        if (!line_allowed(c, p, nl ? (size_t)(nl - p) : avail))
            break;
        if (nl == NULL) {
            if (avail > ADMIN_LINE_MAX) {
                respond(c, admin_error("line_too_long", "a request line is at most %d bytes", ADMIN_LINE_MAX),
                        NULL);
                c->discarding = 1;
                c->line_token = 0;
                off = c->in.len;
            }
            break;
        }
        size_t len = (size_t)(nl - p);
        off += len + 1;
        c->line_token = 0;
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len > ADMIN_LINE_MAX) {
            respond(c, admin_error("line_too_long", "a request line is at most %d bytes", ADMIN_LINE_MAX),
                    NULL);
            continue;
        }
        size_t blank = 0;
        while (blank < len && (p[blank] == ' ' || p[blank] == '\t'))
            blank++;
        if (blank == len)
            continue; /* empty lines are keep-alives */
        handle_line(c, p, len);
    }
    if (c->refused)
        off = c->in.len; /* its last response is on its way: the rest is not read */
    if (c->closing || off == 0)
        return;
    bytebuf_consume(&c->in, off); /* an emptied buffer above ADMIN_IN_FIRST is given back */
}

static void on_partial_line_idle(uv_timer_t *t)
{
    admin_client *c = t->data;
    refuse(c, admin_error("timeout", "a request line was started and got no byte for %d s",
                          ADMIN_PARTIAL_LINE_IDLE_MS / 1000));
}

/* watch_partial_line - a started line must keep growing; complete lines behind a wait are not partial */
static void watch_partial_line(admin_client *c)
{
    if (c->closing || c->refused)
        return;
    if ((c->in.len > 0 || admin_http_partial(c->http)) && !c->waiting && !c->discarding)
        uv_timer_start(&c->idle_timer, on_partial_line_idle, ADMIN_PARTIAL_LINE_IDLE_MS, 0);
    else
        uv_timer_stop(&c->idle_timer);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    admin_client *c = h->data;
    *buf = uv_buf_init(c->a->read_buf, sizeof(c->a->read_buf));
}

/*
 * peer_reset - c's TCP connection was reset. A reset behind unread requests may reach us as a plain EOF (the
 * kernel reports the requests, then end of input), which would pass for a half-close whose wait must be
 * answered: the client's scopes would outlive it until the wait's timeout.
 */
static int peer_reset(admin_client *c)
{
    uv_os_fd_t fd;
    struct tcp_info info;
    socklen_t len = sizeof(info);
    if (c->h.handle.type != UV_TCP || uv_fileno(&c->h.handle, &fd) != 0 ||
        getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return 0;
    return info.tcpi_state == TCP_CLOSE; /* a half-closed peer leaves us in CLOSE_WAIT */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    admin_client *c = stream->data;
    if (nread == 0 || c->closing)
        return;
    if (c->refused) {
        /* Dropped; the linger started at the refusal ends it whatever the client still sends, so that a
         * refused stranger cannot keep its descriptor by trickling bytes. */
        if (nread < 0)
            admin_client_close(c, NULL);
        return;
    }
    if (nread == UV_EOF && peer_reset(c)) {
        admin_client_close(c, NULL); /* gone: nothing it asked for can reach it */
        return;
    }
    if (nread == UV_EOF) {
        /* A half-close (shutdown(SHUT_WR), `nc -N`): the requests already sent are still answered, and a
         * last line without its newline counts as a request. The connection closes once that is done. */
        if (c->http != NULL && c->subscribed) {
            admin_client_close(c, NULL); /* an event stream's reader went away: its slot is free again */
            return;
        }
        uv_read_stop(stream);
        c->eof = 1;
        if (c->in.len > 0 && !c->discarding && c->http == NULL) {
            if (bytebuf_append(&c->in, "\n", 1) != 0) {
                admin_client_close(c, "out of memory");
                return;
            }
            process_lines(c);
        }
        close_if_done(c);
        return;
    }
    if (nread < 0) {
        admin_client_close(c, NULL);
        return;
    }
    size_t n = (size_t)nread;
    if (!c->started) {
        /* The first byte tells the protocol: a request line starts with a method (GET, POST, ...), which no
         * JSON text does. */
        c->started = 1;
        if (buf->base[0] >= 'A' && buf->base[0] <= 'Z' && (c->http = admin_http_new(c)) == NULL) {
            admin_client_close(c, "out of memory");
            return;
        }
    }
    /* While skipping an over-long line or waiting, keep only what is needed: bounded either way. */
    if (c->in.len + n > ADMIN_LINE_MAX + ADMIN_READ_BUFFER && !c->discarding && c->waiting) {
        admin_client_close(c, "too many requests queued behind messages.wait");
        return;
    }
    if (bytebuf_append(&c->in, buf->base, n) != 0) {
        admin_client_close(c, "out of memory");
        return;
    }
    process_lines(c); /* an idle client keeps no more than ADMIN_IN_FIRST of input buffer */
    watch_partial_line(c);
}

/* -- waits and streams ------------------------------------------------------------------------------- */

static void end_wait(admin_client *c, cJSON *resp)
{
    uv_timer_stop(&c->timer);
    c->waiting = 0;
    cJSON *id = c->wait_id;
    c->wait_id = NULL;
    filter_free(&c->filter);
    respond(c, resp, id);
    process_lines(c); /* requests that queued behind the wait */
    watch_partial_line(c);
    close_if_done(c);
}

/* close_if_done - after a half-close: close once no wait is pending and every response is written */
static void close_if_done(admin_client *c)
{
    if (!c->eof || c->closing || c->waiting || c->subscribed)
        return;
    flush_output(c);
    if (c->writes == 0 && !c->closing)
        admin_client_close(c, NULL);
}

static void on_wait_timeout(uv_timer_t *t)
{
    admin_client *c = t->data;
    if (c->waiting)
        end_wait(c, admin_error("timeout", "no matching message arrived in time"));
}

void admin_defer_wait(admin_client *c, cJSON *id, admin_filter *filter, uint64_t timeout_ms)
{
    c->waiting = 1;
    uv_timer_stop(&c->idle_timer);
    c->wait_id = id;
    c->filter = *filter;
    memset(filter, 0, sizeof(*filter));
    uv_timer_start(&c->timer, on_wait_timeout, timeout_ms, 0);
}

int admin_subscribe(admin_client *c, scope *sc)
{
    if (!c->subscribed && c->a->nsubscribers >= ADMIN_SUBSCRIBERS_MAX)
        return -1;
    if (!c->subscribed)
        c->a->nsubscribers++;
    c->subscribed = 1;
    c->sub_scope = sc;
    return 0;
}

/*
 * subject_matches - the message's first Subject header field, unfolded, its encoded words decoded (RFC
 * 2047), matches glob without regard to case; a message without one matches as ""
 */
static int subject_matches(const char *glob, const store_msg *m)
{
    char value[ADMIN_SUBJECT_MAX + 1], decoded[ADMIN_SUBJECT_MAX * 3 + 1];
    (void)mime_header(m->body ? m->body : "", m->size, "Subject", value, sizeof(value));
    (void)mime_decode_words(value, decoded, sizeof(decoded));
    return fnmatch(glob, decoded, FNM_CASEFOLD) == 0;
}

int admin_filter_match(const admin_filter *f, const store_msg *m)
{
    if (f->since_arrival ? m->arrival <= f->since_arrival : m->seq <= f->since_seq)
        return 0;
    /* Addresses match without regard to case, as profile globs do. */
    if (f->from != NULL && fnmatch(f->from, m->sender ? m->sender : "", FNM_CASEFOLD) != 0)
        return 0;
    if (f->subject != NULL && !subject_matches(f->subject, m))
        return 0;
    if (f->to != NULL) {
        size_t i;
        for (i = 0; i < m->nrcpts; i++)
            if (fnmatch(f->to, m->rcpts[i], FNM_CASEFOLD) == 0)
                break;
        if (i == m->nrcpts)
            return 0;
    }
    return 1;
}

void admin_message_stored(admin *a, scope *sc, store_msg *m)
{
    if (a == NULL)
        return;
    for (admin_client *c = LIST_FIRST(&a->clients), *next; c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (!c->closing && c->waiting && c->filter.sc == sc && admin_filter_match(&c->filter, m)) {
            cJSON *resp = cJSON_CreateObject();
            cJSON_AddBoolToObject(resp, "ok", 1);
            cJSON_AddItemToObject(resp, "message", admin_message_summary(m));
            end_wait(c, resp);
        }
    }
}

int admin_has_subscribers(const admin *a)
{
    return a != NULL && a->nsubscribers > 0;
}

/* subscribed_to - a client streams sc's events (at most ADMIN_CLIENTS_MAX to look at) */
static int subscribed_to(const admin *a, const scope *sc)
{
    const admin_client *c;
    LIST_FOREACH(c, &a->clients, link)
        if (c->subscribed && !c->closing && c->sub_scope == sc)
            return 1;
    return 0;
}

_Static_assert(SCOPE_ID_MAX <= EVENT_SCOPE_ID_MAX, "a scope id fits an event line");

void admin_publish(admin *a, scope *sc, uint64_t sid, const char *event, const char *text, size_t len)
{
    if (!admin_has_subscribers(a) || !subscribed_to(a, sc))
        return; /* the event line is built only for someone */
    char line[EVENT_LINE_MAX];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    size_t line_len = event_line(line, sc->id, sid, event, text, len, &now);
    for (admin_client *c = LIST_FIRST(&a->clients), *next; c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (c->subscribed && !c->closing && c->sub_scope == sc && c->http != NULL)
            admin_http_event(c, line, line_len);
        else if (c->subscribed && !c->closing && c->sub_scope == sc)
            queue_line(c, line, line_len, 0);
    }
}

void admin_scope_ended(admin *a, scope *sc)
{
    if (a == NULL)
        return;
    char line[SCOPE_ID_MAX + 48];
    int n = snprintf(line, sizeof(line), "{\"event\":\"scope_end\",\"scope\":\"%s\"}", sc->id);
    for (admin_client *c = LIST_FIRST(&a->clients), *next; c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (c->closing)
            continue;
        if (c->waiting && c->filter.sc == sc)
            end_wait(c, admin_error("not_found", "scope %s ended", sc->id));
        if (c->subscribed && c->sub_scope == sc) {
            queue_line(c, line, (size_t)n, 0);
            hang_up(c);
        }
    }
}

/* -- listeners ------------------------------------------------------------------------------------------- */

static void on_connection(uv_stream_t *server_stream, int status)
{
    admin_listener *l = server_stream->data;
    admin *a = l->a;
    if (status < 0) {
        log_server(LOG_WARN, "admin: accept failed: %s", uv_strerror(status));
        return;
    }
    admin_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->a = a;
    bytebuf_init(&c->in, ADMIN_IN_FIRST, ADMIN_IN_MAX);
    bytebuf_init(&c->out, ADMIN_OUT_FIRST, ADMIN_OUT_CHUNK);
    int r = l->is_unix ? uv_pipe_init(a->srv->loop, &c->h.pipe, 0) : uv_tcp_init(a->srv->loop, &c->h.tcp);
    if (r != 0) {
        free(c);
        return;
    }
    c->h.handle.data = c;
    uv_timer_init(a->srv->loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(a->srv->loop, &c->idle_timer);
    c->idle_timer.data = c;
    c->handles_open = 3;
    c->authed = a->srv->cfg->admin_token == NULL;
    LIST_INSERT_HEAD(&a->clients, c, link);
    a->nclients++;
    if (uv_accept(server_stream, &c->h.stream) != 0 || uv_read_start(&c->h.stream, on_alloc, on_read) != 0)
        admin_client_close(c, NULL);
    else if (a->nclients > ADMIN_CLIENTS_MAX + ADMIN_REFUSED_MAX)
        admin_client_close(c, NULL); /* past the refusals too: closed at once, holding no descriptor */
    else if (a->nclients > ADMIN_CLIENTS_MAX)
        refuse(c, admin_error("too_many_clients", "the admin socket serves at most %d connections at once",
                              ADMIN_CLIENTS_MAX));
}

/*
 * unix_socket_alive - a process accepts connections on path. A start-up probe, before the loop runs: a
 * plain blocking connect(2), which on a unix socket answers at once.
 */
static int unix_socket_alive(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return alive;
}

static int open_listener(admin *a, admin_listener *l, const admin_addr *addr)
{
    uv_loop_t *loop = a->srv->loop;
    l->a = a;
    int r;
    if (addr->unix_path[0]) {
        l->is_unix = 1;
        snprintf(l->bound, sizeof(l->bound), "unix:%s", addr->unix_path);
        uv_fs_t req;
        uv_fs_t st;
        /* A socket file left by a process that is gone would make bind fail: remove it, but only when
         * nobody answers on it (a second server must not take the first one's socket away). */
        if (uv_fs_lstat(NULL, &st, addr->unix_path, NULL) == 0 && S_ISSOCK(st.statbuf.st_mode)) {
            if (unix_socket_alive(addr->unix_path)) {
                uv_fs_req_cleanup(&st);
                return UV_EADDRINUSE;
            }
            uv_fs_unlink(NULL, &req, addr->unix_path, NULL);
            uv_fs_req_cleanup(&req);
        }
        uv_fs_req_cleanup(&st);
        if ((r = uv_pipe_init(loop, &l->h.pipe, 0)) != 0)
            return r;
        l->h.handle.data = l;
        l->open = 1;
        if ((r = uv_pipe_bind(&l->h.pipe, addr->unix_path)) != 0)
            return r;
    } else {
        struct sockaddr_storage ss;
        const char *host = addr->tcp.host;
        r = strchr(host, ':') ? uv_ip6_addr(host, addr->tcp.port, (struct sockaddr_in6 *)&ss)
                              : uv_ip4_addr(host, addr->tcp.port, (struct sockaddr_in *)&ss);
        if (r != 0 || (r = uv_tcp_init(loop, &l->h.tcp)) != 0)
            return r;
        l->h.handle.data = l;
        l->open = 1;
        if ((r = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&ss, 0)) != 0)
            return r;
        int len = sizeof(ss);
        if ((r = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss, &len)) != 0)
            return r;
        snprintf(l->host, sizeof(l->host), "%s", host);
        l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
        int v6 = strchr(host, ':') != NULL;
        snprintf(l->bound, sizeof(l->bound), "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", l->port);
    }
    return uv_listen(&l->h.stream, ADMIN_BACKLOG, on_connection);
}

admin *admin_start(server *srv, int *failed)
{
    const config *cfg = srv->cfg;
    *failed = 0;
    if (cfg->nadmin == 0)
        return NULL;
    admin *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        log_server(LOG_ERROR, "admin: out of memory");
        *failed = 1;
        return NULL;
    }
    a->srv = srv;
    LIST_INIT(&a->clients);
    uv_idle_init(srv->loop, &a->flush);
    a->flush.data = a;
    a->flush_open = 1;
    uv_timer_init(srv->loop, &a->stream_flush);
    a->stream_flush.data = a;
    a->stream_flush_open = 1;
    for (size_t i = 0; i < cfg->nadmin; i++) {
        const admin_addr *addr =
            &cfg->admin[i]; /* non-loopback without --admin-remote: refused by options.c */
        admin_listener *l = &a->listeners[a->nlisteners++];
        int r = open_listener(a, l, addr);
        if (r != 0) {
            if (addr->unix_path[0])
                log_server(LOG_ERROR, "cannot listen for admin on unix:%s: %s", addr->unix_path,
                           uv_strerror(r));
            else
                log_server(LOG_ERROR, "cannot listen for admin on %s:%d: %s", addr->tcp.host, addr->tcp.port,
                           uv_strerror(r));
            *failed = 1;
            break;
        }
        log_server(LOG_INFO, "listening for admin on %s", l->bound);
        if (!addr->unix_path[0] && !config_host_is_loopback(addr->tcp.host) && cfg->admin_token == NULL)
            log_server(LOG_WARN,
                       "admin socket on %s without --admin-token: anyone who can reach it controls the "
                       "server",
                       l->bound);
    }
    if (*failed) {
        admin_stop(a);
        return a; /* freed after the loop, once its handles are closed */
    }
    return a;
}

void admin_stop(admin *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nlisteners; i++)
        if (a->listeners[i].open) {
            a->listeners[i].open = 0;
            uv_close(&a->listeners[i].h.handle, NULL);
        }
    for (admin_client *c = LIST_FIRST(&a->clients), *next; c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        admin_client_close(c, NULL);
    }
    if (a->flush_open) {
        a->flush_open = 0;
        uv_close((uv_handle_t *)&a->flush, NULL);
    }
    if (a->stream_flush_open) {
        a->stream_flush_open = 0;
        uv_close((uv_handle_t *)&a->stream_flush, NULL);
    }
}

void admin_free(admin *a)
{
    free(a);
}

void admin_ports_json(const admin *a, cJSON *root)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nlisteners; i++) {
        const admin_listener *l = &a->listeners[i];
        if (!l->open)
            continue;
        cJSON *all = cJSON_GetObjectItemCaseSensitive(root, "admin_listeners");
        if (all == NULL)
            all = cJSON_AddArrayToObject(root, "admin_listeners");
        cJSON_AddItemToArray(all, cJSON_CreateString(l->bound));
        if (l->is_unix) {
            if (cJSON_GetObjectItemCaseSensitive(root, "admin_unix") == NULL)
                cJSON_AddStringToObject(root, "admin_unix", l->bound + 5);
            continue;
        }
        if (cJSON_GetObjectItemCaseSensitive(root, "admin") != NULL)
            continue;
        cJSON *o = cJSON_AddObjectToObject(root, "admin");
        cJSON_AddStringToObject(o, "host", l->host);
        cJSON_AddNumberToObject(o, "port", l->port);
        cJSON_AddStringToObject(o, "address", l->bound);
    }
}

int admin_subscribers_max(void)
{
    return ADMIN_SUBSCRIBERS_MAX;
}

/* -- for the HTTP framing (admin_http.c) ----------------------------------------------------------------- */

admin_http *admin_client_http(const admin_client *c)
{
    return c->http;
}

bytebuf *admin_client_input(admin_client *c)
{
    return &c->in;
}

int admin_client_busy(const admin_client *c)
{
    return c->closing || c->waiting || c->refused;
}

void admin_client_send(admin_client *c, char *data, size_t len)
{
    queue_out(c, data, len, 1, 0);
}

void admin_client_send_copy(admin_client *c, const char *data, size_t len)
{
    queue_out(c, (char *)data, len, 0, 0);
}

void admin_client_finish(admin_client *c)
{
    /* Unlike refuse(), no linger: a large response must be written whole first. Input is dropped meanwhile.
     */
    c->refused = 1;
    c->eof = 1;
    if (!c->closing)
        uv_timer_stop(&c->idle_timer);
    close_if_done(c);
}

void admin_respond(admin_client *c, cJSON *resp, cJSON *id)
{
    respond(c, resp, id);
}

cJSON *admin_output_check(const admin_client *c, size_t len)
{
    return too_big(c, len + ADMIN_WRITE_OVERHEAD);
}

int admin_client_token_ok(admin_client *c, const char *given)
{
    const char *token = c->a->srv->cfg->admin_token;
    int ok = token == NULL || same_token(given, token); /* every request, as on the NDJSON side */
    if (ok)
        c->authed = 1;
    return ok;
}

cJSON *admin_request_id(const cJSON *req)
{
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(req, "id");
    return idv ? id_copy(idv) : NULL;
}
