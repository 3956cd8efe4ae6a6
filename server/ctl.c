/*
 * ctl.c - `smtpfault ctl`: the admin protocol for humans and shell scripts.
 *
 * One connection (libuv, TCP or unix socket), one request, one response printed readably or, with
 * --json, as the server sent it. `ctl events` follows the event stream until interrupted. Exit codes: 0
 * when the server answered ok, 1 when it answered an error or could not be reached, 2 for a usage error.
 * Profiles are read here and sent inline, so `ctl load` works against a server in a container.
 */
#include "ctl.h"
#include "jsonutil.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <uv.h>
#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/coding.h>

#include "bytebuf.h"
#include "cli.h"
#include "config.h"
#include "fsutil.h"
#include "options.h"
#include "profiles.h"

#define CTL_EXIT_USAGE        2
#define CTL_CONNECT_TIMEOUT_S 10
#define CTL_LINE_MAX          (64 * 1024 * 1024)
#define CTL_IN_FIRST          65536

/* The usage; %s: the server's default admin address. */
static const char ctl_usage[] =
    "Usage: smtpfault ctl [--admin ADDR] [--token TOKEN] [--scope ID] [--json] COMMAND [ARGS]\n"
    "\n"
    "Talk to a running smtpfault through its admin socket (docs/admin.md).\n"
    "  --admin ADDR     HOST:PORT or unix:PATH (default: the first address of $SMTPFAULT_ADMIN, else\n"
    "                   %s; 0.0.0.0 and [::] are reached on loopback)\n"
    "  --token TOKEN    the server's --admin-token (default $SMTPFAULT_ADMIN_TOKEN)\n"
    "  --scope ID       act on this scope (from `scope create`) instead of the server's own listeners\n"
    "  --json           print the server's JSON response as it is\n"
    "\n"
    "Commands:\n"
    "  ping                       exit 0 when the server answers (a health check)\n"
    "  version | stats | sessions | session ID | ca\n"
    "  load FILE|NAME             put a profile in force: a file here (sent inline), or the name of one\n"
    "                             shipped with the server (smtpfault profiles)\n"
    "  validate FILE|NAME         check a profile without loading it\n"
    "  profile                    the profile in force\n"
    "  clear-profile              back to the default profile\n"
    "  messages [--to GLOB] [--from GLOB] [--subject GLOB] [--since ID] [--limit N]\n"
    "  message ID [--raw]         one message (--raw: its bytes exactly as received)\n"
    "  delete ID | clear          forget one message, or all\n"
    "  wait [--to GLOB] [--from GLOB] [--subject GLOB] [--since ID] [--timeout SECONDS]\n"
    "                             until a matching message arrives (exit 1 on timeout)\n"
    "  events                     follow the event stream until interrupted\n"
    "  reset                      profile, counters, messages and rate limits back to the start\n"
    "  report [CLIENT]            a client's findings and retry story (docs/client-checks.md); without\n"
    "                             CLIENT, the clients that have one\n"
    "  scope create [--name NAME | --profile FILE] [--listeners LIST] [--keep]\n"
    "                             a new scope on new ports; prints the answer as JSON. Without --keep the\n"
    "                             scope lives while this command runs: until its standard input (a pipe\n"
    "                             or terminal) closes, or SIGTERM/SIGINT\n"
    "  scope list | scope delete ID\n"
    "  raw JSON                   send one request object as it is\n";

typedef struct ctl {
    uv_loop_t *loop;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
    uv_pipe_t stdin_pipe; /* scope create without --keep: the scope lives until this closes */
    uv_tty_t stdin_tty;
    uv_handle_t *stdin_handle;
    char *request;   /* the line to send */
    bytebuf in;      /* response lines not complete yet, at most CTL_LINE_MAX */
    int follow;      /* events: print every line until interrupted */
    int hold;        /* scope create: keep the connection (and so the scope) until stdin closes or a signal */
    int always_json; /* scope create: the answer is for scripts */
    int json;        /* print responses raw */
    int got_response;
    int exit_code;
    const char *command;
    const char *address;
    int raw_message; /* message --raw: print the decoded bytes */
    uint64_t wait_s; /* wait: the server answers within this, plus the usual margin */
} ctl;

static void ctl_close(ctl *c)
{
    if (!uv_is_closing(&c->h.handle))
        uv_close(&c->h.handle, NULL);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&c->sigint))
        uv_close((uv_handle_t *)&c->sigint, NULL);
    if (!uv_is_closing((uv_handle_t *)&c->sigterm))
        uv_close((uv_handle_t *)&c->sigterm, NULL);
    if (c->stdin_handle != NULL && !uv_is_closing(c->stdin_handle)) {
        /* uv_pipe_open made the pipe non-blocking for everyone who shares it: the script that started us
         * would read EAGAIN from it next. (libuv reopens a terminal, so that one is ours alone.) */
        if (c->stdin_handle == (uv_handle_t *)&c->stdin_pipe)
            (void)uv_stream_set_blocking((uv_stream_t *)&c->stdin_pipe, 1);
        uv_close(c->stdin_handle, NULL);
    }
}

/* -- printing ---------------------------------------------------------------------------------------- */

static void print_message_line(const cJSON *m)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "recipients");
    printf("%-22s %-28s ", json_str(m, "id"), json_str(m, "sender")[0] ? json_str(m, "sender") : "<>");
    int i = 0;
    for (const cJSON *x = r ? r->child : NULL; x != NULL; x = x->next, i++)
        printf("%s%s", i ? "," : "", cJSON_IsString(x) ? x->valuestring : "?");
    printf("  %.0f bytes  %s\n", json_num(m, "size"), json_str(m, "received"));
}

/* print_list - the strings of array key in resp, joined by ", " ("" when there are none) */
static void print_list(const cJSON *resp, const char *key)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(resp, key), *x;
    const char *sep = "";
    cJSON_ArrayForEach(x, a)
    {
        if (cJSON_IsString(x)) {
            printf("%s%s", sep, x->valuestring);
            sep = ", ";
        }
    }
}

/*
 * print_profile_scope - what a loaded profile touches, from profile.load's answer: "1 rule at rcpt on smtp,
 * submission, smtps", and the settings it changes; a profile that changes nothing says so
 */
static void print_profile_scope(const cJSON *resp)
{
    double rules = json_num(resp, "rules");
    int nsettings = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp, "settings"));
    int nstages = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp, "stages"));
    if (rules == 0 && nsettings == 0 && nstages == 0) {
        printf("no rules and no settings: the server behaves as without a profile\n");
        return;
    }
    printf("%.0f rule%s", rules, rules == 1 ? "" : "s");
    if (nstages > 0) {
        printf(" at ");
        print_list(resp, "stages");
        printf(" on ");
        print_list(resp, "listeners");
    }
    if (nsettings > 0) {
        printf("; changes ");
        print_list(resp, "settings");
    }
    printf("\n");
}

/* print_base64 - decode and write raw message bytes */
static void print_base64(const char *b64)
{
    size_t len = strlen(b64);
    word32 n = (word32)(len / 4 * 3 + 3);
    byte *out = malloc(n);
    if (out != NULL && Base64_Decode((const byte *)b64, (word32)len, out, &n) == 0)
        fwrite(out, 1, n, stdout);
    else
        fprintf(stderr, "smtpfault ctl: the raw message is not valid base64\n");
    free(out);
}

/* print_scopes - scope list: a line per scope */
static void print_scopes(const cJSON *arr)
{
    const cJSON *sc;
    cJSON_ArrayForEach(sc, arr)
    {
        printf("%-6s", json_str(sc, "scope"));
        const cJSON *l;
        cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(sc, "listeners"))
        {
            printf(" %s %s", l->string, json_str(l, "address"));
        }
        const cJSON *sessions = cJSON_GetObjectItemCaseSensitive(sc, "sessions");
        printf("  profile %s%s%s, %.0f live session%s, %.0f message%s%s\n",
               json_str(sc, "profile")[0] ? "\"" : "",
               json_str(sc, "profile")[0] ? json_str(sc, "profile") : "(default)",
               json_str(sc, "profile")[0] ? "\"" : "", json_num(sessions, "live"),
               json_num(sessions, "live") == 1 ? "" : "s", json_num(sc, "messages"),
               json_num(sc, "messages") == 1 ? "" : "s",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sc, "keep")) ? " (kept)" : "");
    }
    int n = cJSON_GetArraySize(arr);
    printf("%d scope%s\n", n, n == 1 ? "" : "s");
}

static void print_human(ctl *c, const cJSON *resp)
{
    const char *cmd = c->command;
    if (strcmp(cmd, "ping") == 0) {
        printf("pong\n");
    } else if (strcmp(cmd, "version") == 0) {
        printf("smtpfault %s (libuv %s, wolfSSL %s, cJSON %s)\n", json_str(resp, "version"),
               json_str(resp, "libuv"), json_str(resp, "wolfssl"), json_str(resp, "cjson"));
    } else if (strcmp(cmd, "messages") == 0) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(resp, "messages");
        for (const cJSON *m = arr ? arr->child : NULL; m != NULL; m = m->next)
            print_message_line(m);
        printf("%.0f message%s%s\n", json_num(resp, "count"), json_num(resp, "count") == 1 ? "" : "s",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "truncated")) ? " (more match: --limit)"
                                                                                 : "");
    } else if (strcmp(cmd, "wait") == 0) {
        print_message_line(cJSON_GetObjectItemCaseSensitive(resp, "message"));
    } else if (strcmp(cmd, "message") == 0 && c->raw_message) {
        print_base64(json_str(resp, "raw_base64"));
    } else if (strcmp(cmd, "message") == 0) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(resp, "message");
        print_message_line(m);
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(resp, "headers");
        for (const cJSON *x = h ? h->child : NULL; x != NULL; x = x->next)
            printf("%s: %s\n", cJSON_GetArrayItem(x, 0)->valuestring, cJSON_GetArrayItem(x, 1)->valuestring);
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(resp, "body");
        printf("\n%s", cJSON_IsString(body) ? body->valuestring : "(the body is not UTF-8: use --raw)\n");
    } else if (strcmp(cmd, "load") == 0 || strcmp(cmd, "validate") == 0) {
        printf("%s profile %s%s%s: ", strcmp(cmd, "load") == 0 ? "loaded" : "valid:",
               json_str(resp, "name")[0] ? "\"" : "",
               json_str(resp, "name")[0] ? json_str(resp, "name") : "(unnamed)",
               json_str(resp, "name")[0] ? "\"" : "");
        print_profile_scope(resp);
    } else if (strcmp(cmd, "clear") == 0 || strcmp(cmd, "reset") == 0) {
        printf("%s: %.0f message%s cleared\n", cmd, json_num(resp, "cleared"),
               json_num(resp, "cleared") == 1 ? "" : "s");
    } else if (strcmp(cmd, "delete") == 0) {
        printf("deleted %s\n", json_str(resp, "deleted"));
    } else if (strcmp(cmd, "ca") == 0) {
        fputs(json_str(resp, "pem"), stdout);
    } else if (strcmp(cmd, "clear-profile") == 0) {
        printf("profile cleared\n");
    } else if (strcmp(cmd, "report") == 0) {
        ctl_print_report(resp);
    } else if (strcmp(cmd, "scope") == 0 && cJSON_GetObjectItemCaseSensitive(resp, "deleted") != NULL) {
        printf("deleted scope %s\n", json_str(resp, "deleted"));
    } else if (strcmp(cmd, "scope") == 0) {
        print_scopes(cJSON_GetObjectItemCaseSensitive(resp, "scopes"));
    } else {
        /* stats, sessions, session, profile, raw: the structure is the answer */
        cJSON *copy = cJSON_Duplicate(resp, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "ok");
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "id");
        char *text = cJSON_Print(copy);
        if (text)
            printf("%s\n", text);
        cJSON_free(text);
        cJSON_Delete(copy);
    }
}

static void print_event(const cJSON *e)
{
    double sid = json_num(e, "session");
    if (sid > 0)
        printf("%s #%.0f %s %s\n", json_str(e, "time"), sid, json_str(e, "event"), json_str(e, "text"));
    else
        printf("%s %s %s\n", json_str(e, "time"), json_str(e, "event"), json_str(e, "text"));
    fflush(stdout);
}

static void on_stdin_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    ctl *c = stream->data;
    free(buf->base);
    if (nread < 0) /* EOF or an error: whoever started us is done with the scope */
        ctl_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void on_hold_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    ctl_close(s->data);
}

/*
 * hold - scope create without --keep: the scope ends with this connection, so keep it until standard
 * input closes (a pipe or a terminal: a script's coprocess, Ctrl-D) or SIGTERM/SIGINT. A standard input
 * that is a file or /dev/null (a background job's) is not watched: it would end the scope at once.
 */
static void hold(ctl *c)
{
    fflush(stdout);
    uv_timer_stop(&c->timer);
    uv_signal_start(&c->sigint, on_hold_signal, SIGINT);
    uv_signal_start(&c->sigterm, on_hold_signal, SIGTERM);
    uv_handle_type t = uv_guess_handle(0);
    int r = -1;
    if (t == UV_TTY && uv_tty_init(c->loop, &c->stdin_tty, 0, 1) == 0) {
        c->stdin_handle = (uv_handle_t *)&c->stdin_tty;
        r = 0;
    } else if (t == UV_NAMED_PIPE && uv_pipe_init(c->loop, &c->stdin_pipe, 0) == 0) {
        c->stdin_handle = (uv_handle_t *)&c->stdin_pipe;
        r = uv_pipe_open(&c->stdin_pipe, 0);
    }
    if (c->stdin_handle != NULL) {
        c->stdin_handle->data = c;
        if (r == 0)
            r = uv_read_start((uv_stream_t *)c->stdin_handle, on_alloc, on_stdin_read);
        if (r != 0) {
            uv_close(c->stdin_handle, NULL);
            c->stdin_handle = NULL;
        }
    }
}

/* handle_line - one line from the server */
static void handle_line(ctl *c, const char *line, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (o == NULL) {
        fprintf(stderr, "smtpfault ctl: the server sent something that is not JSON\n");
        c->exit_code = 1;
        ctl_close(c);
        return;
    }
    const cJSON *okv = cJSON_GetObjectItemCaseSensitive(o, "ok");
    int is_event = cJSON_GetObjectItemCaseSensitive(o, "event") != NULL && okv == NULL;
    if (is_event) {
        if (c->json)
            printf("%.*s\n", (int)len, line), fflush(stdout);
        else
            print_event(o);
    } else if (!c->got_response) {
        c->got_response = 1;
        if (cJSON_IsTrue(okv)) {
            c->exit_code = 0;
            if (c->hold)
                hold(c); /* before the answer: a script may signal us as soon as it has read it */
            if (c->json || c->always_json)
                printf("%.*s\n", (int)len, line), fflush(stdout); /* events: a script waits for this line */
            else if (!c->follow)
                print_human(c, o);
        } else {
            c->exit_code = 1;
            if (c->json) {
                printf("%.*s\n", (int)len, line);
            } else {
                const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
                const cJSON *errors = cJSON_GetObjectItemCaseSensitive(o, "errors");
                if (cJSON_IsArray(errors) && cJSON_GetArraySize(errors) > 0) {
                    for (const cJSON *x = errors->child; x != NULL; x = x->next)
                        fprintf(stderr, "%s\n", cJSON_IsString(x) ? x->valuestring : "?");
                } else if (strcmp(json_str(err, "code"), "timeout") == 0 && strcmp(c->command, "wait") == 0) {
                    fprintf(stderr, "smtpfault ctl: wait: no matching message arrived in time\n");
                } else {
                    fprintf(stderr, "smtpfault ctl: %s: %s (%s)\n", c->command, json_str(err, "message"),
                            json_str(err, "code"));
                }
            }
        }
        if (c->follow && c->exit_code == 0 && !c->json) {
            /* on stderr: stdout carries only events, for scripts */
            fprintf(stderr, "smtpfault ctl: following the events of %s (Ctrl-C to stop)\n", c->address);
            fflush(stderr);
        }
        if ((!c->hold && !c->follow) || c->exit_code != 0)
            ctl_close(c);
    }
    cJSON_Delete(o);
}

/* -- I/O ------------------------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    char *b = malloc(suggested);
    *buf = uv_buf_init(b, b ? (unsigned)suggested : 0);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    ctl *c = stream->data;
    if (nread < 0) {
        if (c->hold && c->got_response && c->exit_code == 0) {
            fprintf(stderr, "smtpfault ctl: the server closed the connection: the scope has ended\n");
            c->exit_code = 1;
        }
        if (!c->got_response) {
            fprintf(stderr, "smtpfault ctl: the server at %s closed the connection without answering\n",
                    c->address);
            c->exit_code = 1;
        }
        free(buf->base);
        ctl_close(c);
        return;
    }
    size_t n = (size_t)nread;
    if (c->in.len + n > CTL_LINE_MAX) {
        fprintf(stderr, "smtpfault ctl: the response is too large\n");
        c->exit_code = 1;
        free(buf->base);
        ctl_close(c);
        return;
    }
    int r = bytebuf_append(&c->in, buf->base, n);
    free(buf->base);
    if (r != 0) {
        ctl_close(c);
        return;
    }
    size_t off = 0;
    char *nl;
    while (!uv_is_closing(&c->h.handle) && off < c->in.len &&
           (nl = memchr(c->in.data + off, '\n', c->in.len - off)) != NULL) {
        handle_line(c, c->in.data + off, (size_t)(nl - (c->in.data + off)));
        off = (size_t)(nl - c->in.data) + 1;
    }
    bytebuf_consume(&c->in, off);
}

static void on_connect_timeout(uv_timer_t *t);

static void on_written(uv_write_t *req, int status)
{
    ctl *c = req->data;
    if (status < 0) {
        fprintf(stderr, "smtpfault ctl: cannot send to %s: %s\n", c->address, uv_strerror(status));
        c->exit_code = 1;
        ctl_close(c);
    }
}

static void on_connected(uv_connect_t *req, int status)
{
    ctl *c = req->data;
    uv_timer_stop(&c->timer);
    if (status == 0 && !c->follow) /* the answer is due within the wait's own timeout, or quickly */
        uv_timer_start(&c->timer, on_connect_timeout, (c->wait_s + CTL_CONNECT_TIMEOUT_S) * 1000, 0);
    if (status < 0) {
        fprintf(stderr, "smtpfault ctl: cannot reach the admin socket at %s: %s\n", c->address,
                uv_strerror(status));
        c->exit_code = 1;
        ctl_close(c);
        return;
    }
    uv_buf_t buf = uv_buf_init(c->request, (unsigned)strlen(c->request));
    c->write_req.data = c;
    if (uv_write(&c->write_req, &c->h.stream, &buf, 1, on_written) != 0 ||
        uv_read_start(&c->h.stream, on_alloc, on_read) != 0) {
        c->exit_code = 1;
        ctl_close(c);
    }
}

static void on_connect_timeout(uv_timer_t *t)
{
    ctl *c = t->data;
    fprintf(stderr, "smtpfault ctl: no answer from %s within %llu s\n", c->address,
            (unsigned long long)(c->wait_s + CTL_CONNECT_TIMEOUT_S));
    c->exit_code = 1;
    ctl_close(c);
}

static void on_sigint(uv_signal_t *s, int signum)
{
    (void)signum;
    ctl *c = s->data;
    if (c->follow)
        c->exit_code = 0;
    ctl_close(c);
}

/* -- requests ------------------------------------------------------------------------------------------ */

/* filter_options - --to, --from, --subject, --since, --limit/--timeout into req */
static int filter_options(int argc, char **argv, cJSON *req, const char *number_key, const char *cmd)
{
    static const struct option opts[] = {
        {"to", required_argument, NULL, 't'},
        {"from", required_argument, NULL, 'f'},
        {"since", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},
        {"timeout", required_argument, NULL, 'T'},
        {"subject", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    const char *inexact = cli_inexact_option(argc, argv, opts, 0);
    if (inexact != NULL) {
        fprintf(stderr, "smtpfault ctl: %s: unknown option '%.*s'\n", cmd, (int)strcspn(inexact, "="),
                inexact);
        return -1;
    }
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            cJSON_AddStringToObject(req, "to", optarg);
            break;
        case 'f':
            cJSON_AddStringToObject(req, "from", optarg);
            break;
        case 'S':
            cJSON_AddStringToObject(req, "subject", optarg);
            break;
        case 's':
            cJSON_AddStringToObject(req, "since", optarg);
            break;
        case 'l':
        case 'T': {
            const char *want = o == 'l' ? "limit" : "timeout";
            char *end;
            double v = strtod(optarg, &end);
            if (strcmp(want, number_key) != 0 || *end != '\0' || end == optarg || v < 0) {
                fprintf(stderr, "smtpfault ctl: %s: --%s%s\n", cmd, want,
                        strcmp(want, number_key) != 0 ? " is not an option here" : " needs a number");
                return -1;
            }
            cJSON_AddNumberToObject(req, want, v);
            break;
        }
        default:
            fprintf(stderr, "smtpfault ctl: %s: unknown option '%s'\n", cmd, argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "smtpfault ctl: %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return -1;
    }
    return 0;
}

/* profile_request - read FILE and put it inline */
static int profile_request(const char *path, cJSON *req)
{
    char *text;
    size_t len;
    int r = fsutil_read(path, PROFILES_FILE_MAX, &text, &len);
    if (r != 0) {
        fprintf(stderr, "smtpfault ctl: cannot read %s: %s\n", path, uv_strerror(r));
        return -1;
    }
    const char *end = NULL;
    cJSON *p = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (p == NULL) {
        /* Let the server's compiler say where: it reports positions like `check` does. */
        fault_errors errs = {NULL, 0};
        fault_profile *fp = fault_profile_compile(text, len, path, &errs);
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        fault_errors_free(&errs);
        fault_profile_unref(fp);
        free(text);
        return -1;
    }
    free(text);
    cJSON_AddItemToObject(req, "profile", p);
    cJSON_AddStringToObject(req, "source", path); /* errors name the file, as `smtpfault check` does */
    return 0;
}

/* scope_request - `scope create|list|delete`: the request into req; 0, or -1 after a message */
static int scope_request(ctl *c, int argc, char **argv, cJSON *req)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"profile", required_argument, NULL, 'p'},
        {"listeners", required_argument, NULL, 'l'},
        {"keep", no_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    const char *sub = argc > 1 ? argv[1] : "";
    c->exit_code = CTL_EXIT_USAGE;
    if (strcmp(sub, "list") == 0 && argc == 2) {
        cJSON_AddStringToObject(req, "cmd", "scope.list");
        return 0;
    }
    if (strcmp(sub, "delete") == 0 && argc == 3) {
        cJSON_AddStringToObject(req, "cmd", "scope.delete");
        cJSON_AddStringToObject(req, "scope", argv[2]);
        return 0;
    }
    if (strcmp(sub, "create") != 0) {
        fprintf(stderr, "smtpfault ctl: scope create [--name NAME | --profile FILE] [--listeners LIST] "
                        "[--keep] | scope list | scope delete ID\n"
                        "Try 'smtpfault ctl --help' for more information.\n");
        return -1;
    }
    cJSON_AddStringToObject(req, "cmd", "scope.create");
    const char *inexact = cli_inexact_option(argc - 1, argv + 1, opts, 0);
    if (inexact != NULL) {
        fprintf(stderr, "smtpfault ctl: scope create: unknown option '%.*s'\n", (int)strcspn(inexact, "="),
                inexact);
        return -1;
    }
    optind = 1;
    opterr = 0;
    int o, keep = 0;
    const char *name = NULL, *file = NULL;
    while ((o = getopt_long(argc - 1, argv + 1, ":", opts, NULL)) != -1) {
        switch (o) {
        case 'n':
            name = optarg;
            break;
        case 'p':
            file = optarg;
            break;
        case 'l': {
            cJSON *list = cJSON_AddArrayToObject(req, "listeners");
            char *copy = strdup(optarg), *save = NULL;
            for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t != NULL;
                 t = strtok_r(NULL, ",", &save))
                cJSON_AddItemToArray(list, cJSON_CreateString(t));
            free(copy);
            break;
        }
        case 'k':
            keep = 1;
            break;
        default:
            fprintf(stderr, "smtpfault ctl: scope create: unknown option '%s'\n", argv[optind]);
            return -1;
        }
    }
    if (optind < argc - 1 || (name != NULL && file != NULL)) {
        fprintf(stderr, "smtpfault ctl: scope create: %s\n",
                name != NULL && file != NULL ? "give --name or --profile, not both" : "unexpected argument");
        return -1;
    }
    if (name != NULL)
        cJSON_AddStringToObject(req, "name", name);
    if (file != NULL && profile_request(file, req) != 0) {
        c->exit_code = 1;
        return -1;
    }
    if (keep)
        cJSON_AddBoolToObject(req, "keep", 1);
    c->hold = !keep;
    c->always_json = 1;
    c->exit_code = 1;
    return 0;
}

/* build_request - the request for argv (argv[0] is the command); NULL after a usage message */
static cJSON *build_request(ctl *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    cJSON *req = cJSON_CreateObject();
    cJSON_AddNumberToObject(req, "id", 1);
    static const struct {
        const char *word, *cmd;
        int args; /* positional arguments */
    } simple[] = {
        {"ping", "ping", 0},
        {"version", "version", 0},
        {"stats", "stats", 0},
        {"sessions", "sessions.list", 0},
        {"profile", "profile.get", 0},
        {"clear-profile", "profile.clear", 0},
        {"clear", "messages.clear", 0},
        {"reset", "reset", 0},
        {"ca", "tls.ca", 0},
        {"events", "events.subscribe", 0},
    };
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (strcmp(cmd, simple[i].word) != 0)
            continue;
        if (argc > 1) {
            fprintf(stderr, "smtpfault ctl: %s takes no arguments\n", cmd);
            goto usage;
        }
        cJSON_AddStringToObject(req, "cmd", simple[i].cmd);
        c->follow = strcmp(cmd, "events") == 0;
        return req;
    }
    if (strcmp(cmd, "load") == 0 || strcmp(cmd, "validate") == 0) {
        if (argc != 2) {
            fprintf(stderr, "smtpfault ctl: %s FILE\n", cmd);
            goto usage;
        }
        cJSON_AddStringToObject(req, "cmd", strcmp(cmd, "load") == 0 ? "profile.load" : "profile.validate");
        uv_fs_t st;
        int is_file = uv_fs_stat(NULL, &st, argv[1], NULL) == 0;
        uv_fs_req_cleanup(&st);
        if (!is_file && strchr(argv[1], '/') == NULL) {
            /* not a file here: the name of a profile shipped with the server (smtpfault profiles) */
            cJSON_AddStringToObject(req, "name", argv[1]);
            return req;
        }
        if (profile_request(argv[1], req) != 0) {
            cJSON_Delete(req);
            c->exit_code = 1;
            return NULL;
        }
        return req;
    }
    if (strcmp(cmd, "session") == 0) {
        char *end;
        double id = argc == 2 ? strtod(argv[1], &end) : 0;
        if (argc != 2 || *end != '\0' || id < 1) {
            fprintf(stderr, "smtpfault ctl: session ID (a number from `ctl sessions`)\n");
            goto usage;
        }
        cJSON_AddStringToObject(req, "cmd", "sessions.get");
        cJSON_AddNumberToObject(req, "session", id);
        return req;
    }
    if (strcmp(cmd, "message") == 0 || strcmp(cmd, "delete") == 0) {
        int raw = argc == 3 && strcmp(argv[2], "--raw") == 0 && strcmp(cmd, "message") == 0;
        if (argc != 2 && !raw) {
            fprintf(stderr, "smtpfault ctl: %s ID%s\n", cmd, strcmp(cmd, "message") == 0 ? " [--raw]" : "");
            goto usage;
        }
        cJSON_AddStringToObject(req, "cmd", strcmp(cmd, "message") == 0 ? "messages.get" : "messages.delete");
        cJSON_AddStringToObject(req, "message", argv[1]);
        if (raw) {
            cJSON_AddBoolToObject(req, "raw", 1);
            c->raw_message = 1;
        }
        return req;
    }
    if (strcmp(cmd, "messages") == 0 || strcmp(cmd, "wait") == 0) {
        int wait = strcmp(cmd, "wait") == 0;
        cJSON_AddStringToObject(req, "cmd", wait ? "messages.wait" : "messages.list");
        if (filter_options(argc, argv, req, wait ? "timeout" : "limit", cmd) != 0)
            goto usage;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "timeout");
        c->wait_s = wait ? (uint64_t)(t ? t->valuedouble + 1 : 11) : 0;
        return req;
    }
    if (strcmp(cmd, "report") == 0) {
        if (argc > 2) {
            fprintf(stderr,
                    "smtpfault ctl: report [CLIENT] (an address, as in ctl sessions without the port)\n");
            goto usage;
        }
        cJSON_AddStringToObject(req, "cmd", "client.report");
        if (argc == 2)
            cJSON_AddStringToObject(req, "client", argv[1]);
        return req;
    }
    if (strcmp(cmd, "scope") == 0)
        return scope_request(c, argc, argv, req) == 0 ? req : (cJSON_Delete(req), NULL);
    if (strcmp(cmd, "raw") == 0) {
        cJSON *r = argc == 2 ? cJSON_Parse(argv[1]) : NULL;
        if (!cJSON_IsObject(r)) {
            cJSON_Delete(r);
            fprintf(stderr, "smtpfault ctl: raw '{\"cmd\": \"ping\"}'\n");
            goto usage;
        }
        cJSON_Delete(req);
        return r;
    }
    fprintf(stderr, "smtpfault ctl: unknown command '%s'\n", cmd);
usage:
    fprintf(stderr, "Try 'smtpfault ctl --help' for more information.\n");
    cJSON_Delete(req);
    c->exit_code = CTL_EXIT_USAGE;
    return NULL;
}

/* add_scope - --scope ID into req, for the commands that take one */
static int add_scope(cJSON *req, const char *id)
{
    static const char *const unscoped[] = {"ping", "version", "scope.create", "scope.list", "scope.delete"};
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
    for (size_t i = 0; i < sizeof(unscoped) / sizeof(unscoped[0]); i++)
        if (cJSON_IsString(cmd) && strcmp(cmd->valuestring, unscoped[i]) == 0) {
            fprintf(stderr, "smtpfault ctl: --scope does not apply to %s\n", cmd->valuestring);
            return -1;
        }
    if (cJSON_GetObjectItemCaseSensitive(req, "scope") == NULL)
        cJSON_AddStringToObject(req, "scope", id);
    return 0;
}

/*
 * env_admin - the first address of $SMTPFAULT_ADMIN, which may list several separated by spaces, as the
 * server's does (a container sets it for both); NULL when it is unset or blank
 */
static const char *env_admin(char *buf, size_t size)
{
    const char *v = getenv("SMTPFAULT_ADMIN");
    if (v == NULL)
        return NULL;
    v += strspn(v, " \t\n");
    size_t n = strcspn(v, " \t\n");
    if (n == 0)
        return NULL;
    if (n >= size)
        return v; /* too long to be an address: the parser says so */
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

/* connect_host - where to connect to reach a server listening on host: a wildcard means loopback */
static const char *connect_host(const char *host)
{
    if (strcmp(host, "0.0.0.0") == 0)
        return "127.0.0.1";
    if (strcmp(host, "::") == 0)
        return "::1";
    return host;
}

int ctl_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"admin", required_argument, NULL, 'a'}, {"token", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},        {"scope", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    ctl c;
    memset(&c, 0, sizeof(c));
    bytebuf_init(&c.in, CTL_IN_FIRST, CTL_LINE_MAX);
    char env_addr[CONFIG_ADMIN_PATH_MAX + 8];
    c.address = env_admin(env_addr, sizeof(env_addr));
    if (c.address == NULL)
        c.address = options_default("admin");
    const char *token = getenv("SMTPFAULT_ADMIN_TOKEN");
    const char *scope_id = NULL;
    int o;
    const char *inexact = cli_inexact_option(argc, argv, opts, 1);
    if (inexact != NULL) {
        fprintf(stderr,
                "smtpfault ctl: unknown option '%.*s'\nTry 'smtpfault ctl --help' for more information.\n",
                (int)strcspn(inexact, "="), inexact);
        return CTL_EXIT_USAGE;
    }
    optind = 1;
    opterr = 0;
    /* "+": stop at the command, whose own options come after it */
    while ((o = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (o) {
        case 'a':
            c.address = optarg;
            break;
        case 'k':
            token = optarg;
            break;
        case 'j':
            c.json = 1;
            break;
        case 's':
            scope_id = optarg;
            break;
        case 'h':
            printf(ctl_usage, options_default("admin"));
            return 0;
        default:
            fprintf(stderr,
                    "smtpfault ctl: unknown option '%s'\nTry 'smtpfault ctl --help' for more information.\n",
                    argv[optind - 1]);
            return CTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, ctl_usage, options_default("admin"));
        return CTL_EXIT_USAGE;
    }
    c.command = argv[optind];
    cJSON *req = build_request(&c, argc - optind, argv + optind);
    if (req == NULL)
        return c.exit_code;
    if (scope_id != NULL && add_scope(req, scope_id) != 0) {
        cJSON_Delete(req);
        return CTL_EXIT_USAGE;
    }
    /* The token first: a server with one reads at most 64 KiB of a line that has not shown it yet. */
    if (token != NULL && token[0]) {
        cJSON_AddStringToObject(req, "token", token);
        cJSON *tok = cJSON_DetachItemFromObjectCaseSensitive(req, "token");
        if (tok != NULL)
            cJSON_InsertItemInArray(req, 0, tok);
    }
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (text == NULL)
        return 1;
    c.request = malloc(strlen(text) + 2);
    if (c.request == NULL) {
        cJSON_free(text);
        return 1;
    }
    sprintf(c.request, "%s\n", text);
    cJSON_free(text);

    uv_loop_t loop;
    uv_loop_init(&loop);
    c.loop = &loop;
    c.exit_code = 1;
    uv_timer_init(&loop, &c.timer);
    c.timer.data = &c;
    uv_signal_init(&loop, &c.sigint);
    c.sigint.data = &c;
    uv_signal_init(&loop, &c.sigterm);
    c.sigterm.data = &c;
    uv_signal_start(&c.sigint, on_sigint, SIGINT);
    c.connect_req.data = &c;
    int r;
    if (strncmp(c.address, "unix:", 5) == 0) {
        uv_pipe_init(&loop, &c.h.pipe, 0);
        c.h.handle.data = &c;
        uv_pipe_connect(&c.connect_req, &c.h.pipe, c.address + 5, on_connected);
        r = 0;
    } else {
        listen_addr a;
        char err[200];
        uv_tcp_init(&loop, &c.h.tcp);
        c.h.handle.data = &c;
        struct sockaddr_storage ss;
        if ((r = config_parse_addr(c.address, &a, err, sizeof(err))) != 0 || !a.enabled) {
            fprintf(stderr, "smtpfault ctl: --admin %s: %s\n", c.address, r ? err : "off is not an address");
            c.exit_code = CTL_EXIT_USAGE;
            r = -1;
        } else {
            const char *host = connect_host(a.host);
            r = strchr(host, ':') ? uv_ip6_addr(host, a.port, (struct sockaddr_in6 *)&ss)
                                  : uv_ip4_addr(host, a.port, (struct sockaddr_in *)&ss);
            if (r == 0)
                r = uv_tcp_connect(&c.connect_req, &c.h.tcp, (const struct sockaddr *)&ss, on_connected);
            if (r != 0)
                fprintf(stderr, "smtpfault ctl: cannot connect to %s: %s\n", c.address, uv_strerror(r));
        }
    }
    if (r != 0)
        ctl_close(&c);
    else
        uv_timer_start(&c.timer, on_connect_timeout, CTL_CONNECT_TIMEOUT_S * 1000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(c.request);
    bytebuf_release(&c.in);
    return c.exit_code;
}
