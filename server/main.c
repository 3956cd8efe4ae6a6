/*
 * main.c - command line and process set-up for the smtpfault server.
 */
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <uv.h>
#include <wolfssl/options.h>
#include <wolfssl/version.h>

#include "config.h"
#include "log.h"
#include "server.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "Usage: smtpfault [OPTIONS]\n"
    "\n"
    "A fake SMTP server for fault injection: it speaks real ESMTP, keeps every message it accepts, and\n"
    "reproduces the errors mail clients meet in production.\n"
    "\n"
    "Listeners (HOST:PORT, [IPV6]:PORT or off; port 0 picks a free port):\n"
    "  --smtp ADDR                SMTP listener (default 127.0.0.1:2525)\n"
    "  --submission ADDR          submission listener (default off)\n"
    "  --ports-file PATH          write the bound addresses as JSON once listening\n"
    "\n"
    "Protocol:\n"
    "  --hostname NAME            name in the greeting and replies (default localhost)\n"
    "  --max-message-size BYTES   SIZE limit, K/M/G suffixes allowed (default 35M)\n"
    "  --max-recipients N         recipients per message, at least 100 (default 1000)\n"
    "  --max-errors N             bad commands before 421 and close (default 20)\n"
    "  --idle-timeout SECONDS     idle time before 421 and close (default 300)\n"
    "\n"
    "Captured messages:\n"
    "  --store-max-messages N     messages kept in memory, oldest evicted first (default 10000)\n"
    "  --store-max-bytes BYTES    bytes kept in memory (default 256M)\n"
    "  --store-dir DIR            also write ID.eml and ID.json per message, fsynced before the 250\n"
    "\n"
    "Process:\n"
    "  --drain-timeout SECONDS    on SIGTERM/SIGINT, time given to transactions in flight (default 5)\n"
    "  --log-format text|json     transcript format on stderr (default text)\n"
    "  --log-level LEVEL          error, warn, info (default: the transcript) or debug\n"
    "  -q, --quiet                same as --log-level warn\n"
    "  -h, --help                 show this help and exit\n"
    "  -V, --version              show the version and exit\n";

enum {
    OPT_SMTP = 256,
    OPT_SUBMISSION,
    OPT_PORTS_FILE,
    OPT_HOSTNAME,
    OPT_MAX_MESSAGE_SIZE,
    OPT_MAX_RECIPIENTS,
    OPT_MAX_ERRORS,
    OPT_IDLE_TIMEOUT,
    OPT_STORE_MAX_MESSAGES,
    OPT_STORE_MAX_BYTES,
    OPT_STORE_DIR,
    OPT_DRAIN_TIMEOUT,
    OPT_LOG_FORMAT,
    OPT_LOG_LEVEL,
};

static const struct option long_options[] = {
    {"smtp", required_argument, NULL, OPT_SMTP},
    {"submission", required_argument, NULL, OPT_SUBMISSION},
    {"ports-file", required_argument, NULL, OPT_PORTS_FILE},
    {"hostname", required_argument, NULL, OPT_HOSTNAME},
    {"max-message-size", required_argument, NULL, OPT_MAX_MESSAGE_SIZE},
    {"max-recipients", required_argument, NULL, OPT_MAX_RECIPIENTS},
    {"max-errors", required_argument, NULL, OPT_MAX_ERRORS},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"store-max-messages", required_argument, NULL, OPT_STORE_MAX_MESSAGES},
    {"store-max-bytes", required_argument, NULL, OPT_STORE_MAX_BYTES},
    {"store-dir", required_argument, NULL, OPT_STORE_DIR},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* usage_error - one line naming the problem, a pointer to --help, and the usage exit code */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "smtpfault: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'smtpfault --help' for more information.\n");
    va_end(ap);
    return EXIT_USAGE;
}

/* number_option - parse a numeric option value within [min, max] */
static int number_option(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    if (config_parse_u64(value, min, max, out) == 0)
        return 0;
    char range[96];
    snprintf(range, sizeof(range), "a number from %llu to %llu", (unsigned long long)min, (unsigned long long)max);
    fprintf(stderr, "smtpfault: --%s: '%s' is not %s\n", name, value, range);
    return -1;
}

/* parse_args - fill cfg from argv; returns -1 to go on, or an exit code */
static int parse_args(int argc, char **argv, config *cfg)
{
    int opt, idx;
    uint64_t v;
    char err[256];
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":qhV", long_options, &idx)) != -1) {
        const char *name = opt >= 256 ? long_options[idx].name : "";
        switch (opt) {
        case OPT_SMTP:
        case OPT_SUBMISSION:
            if (config_parse_addr(optarg, &cfg->listen[opt == OPT_SMTP ? LISTENER_SMTP : LISTENER_SUBMISSION], err,
                                  sizeof(err)) != 0)
                return usage_error("--%s: %s", name, err);
            break;
        case OPT_PORTS_FILE:
            cfg->ports_file = optarg;
            break;
        case OPT_HOSTNAME:
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof(cfg->hostname) || strpbrk(optarg, " \r\n\t"))
                return usage_error("--%s: '%s' is not a host name", name, optarg);
            snprintf(cfg->hostname, sizeof(cfg->hostname), "%s", optarg);
            break;
        case OPT_MAX_MESSAGE_SIZE:
            if (number_option(name, optarg, 1024, UINT64_C(1) << 40, &cfg->max_message_size) != 0)
                return EXIT_USAGE;
            break;
        case OPT_MAX_RECIPIENTS:
            if (number_option(name, optarg, 100, 1000000, &v) != 0)
                return EXIT_USAGE;
            cfg->max_recipients = (size_t)v;
            break;
        case OPT_MAX_ERRORS:
            if (number_option(name, optarg, 1, 1000000, &v) != 0)
                return EXIT_USAGE;
            cfg->max_errors = (unsigned)v;
            break;
        case OPT_IDLE_TIMEOUT:
            if (number_option(name, optarg, 1, 86400, &v) != 0)
                return EXIT_USAGE;
            cfg->idle_timeout_s = (unsigned)v;
            break;
        case OPT_STORE_MAX_MESSAGES:
            if (number_option(name, optarg, 0, 100000000, &v) != 0)
                return EXIT_USAGE;
            cfg->store_max_messages = (size_t)v;
            break;
        case OPT_STORE_MAX_BYTES:
            if (number_option(name, optarg, 0, UINT64_C(1) << 40, &cfg->store_max_bytes) != 0)
                return EXIT_USAGE;
            break;
        case OPT_STORE_DIR:
            cfg->store_dir = optarg;
            break;
        case OPT_DRAIN_TIMEOUT:
            if (number_option(name, optarg, 0, 3600, &v) != 0)
                return EXIT_USAGE;
            cfg->drain_timeout_s = (unsigned)v;
            break;
        case OPT_LOG_FORMAT: {
            int f = log_parse_format(optarg);
            if (f < 0)
                return usage_error("--%s: '%s' is not text or json", name, optarg);
            cfg->log_format = (log_format)f;
            break;
        }
        case OPT_LOG_LEVEL: {
            int l = log_parse_level(optarg);
            if (l < 0)
                return usage_error("--%s: '%s' is not error, warn, info or debug", name, optarg);
            cfg->log_level = (log_level)l;
            break;
        }
        case 'q':
            cfg->log_level = LOG_WARN;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("smtpfault %s (libuv %s, wolfSSL %s, cJSON %s)\n", SMTPFAULT_VERSION, uv_version_string(),
                   LIBWOLFSSL_VERSION_STRING, cJSON_Version());
            return EXIT_SUCCESS;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    return -1;
}

int main(int argc, char **argv)
{
    config cfg;
    config_defaults(&cfg);
    int rc = parse_args(argc, argv, &cfg);
    if (rc >= 0)
        return rc;
    log_setup(stderr, cfg.log_format, cfg.log_level);
    signal(SIGPIPE, SIG_IGN); /* a vanished client is a write error, not a reason to die */

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "smtpfault: cannot start the event loop\n");
        return EXIT_FAILURE;
    }
    server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        fprintf(stderr, "smtpfault: out of memory\n");
        return EXIT_FAILURE;
    }
    int started = server_start(srv, &loop, &cfg) == 0;
    if (started)
        log_server(LOG_INFO, "smtpfault %s ready", SMTPFAULT_VERSION);
    uv_run(&loop, UV_RUN_DEFAULT);
    server_free(srv);
    free(srv);
    if (uv_loop_close(&loop) != 0)
        log_server(LOG_WARN, "event loop closed with handles still open");
    return started ? EXIT_SUCCESS : EXIT_FAILURE;
}
