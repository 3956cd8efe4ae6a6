/*
 * main.c - command line and process set-up for the smtpfault server.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cJSON.h>
#include <uv.h>
#include <wolfssl/options.h>
#include <wolfssl/version.h>

#include "certs.h"
#include "cli.h"
#include "config.h"
#include "ctl.h"
#include "fsutil.h"
#include "log.h"
#include "profiles.h"
#include "server.h"
#include "version.h"

#define EXIT_USAGE 2

static const char usage_head[] =
    "Usage: smtpfault [OPTIONS]                 run the server\n"
    "       smtpfault SUBCOMMAND [ARGS]         (smtpfault help SUBCOMMAND for its own help)\n"
    "\n";

static const char usage_text[] =
    "A fake SMTP server for fault injection: it speaks real ESMTP, keeps every message it accepts, and\n"
    "reproduces the errors mail clients meet in production.\n"
    "\n"
    "Listeners (HOST:PORT, [IPV6]:PORT or off; port 0 picks a free port):\n"
    "  --smtp ADDR                SMTP, STARTTLS offered (default 127.0.0.1:2525)\n"
    "  --submission ADDR          submission: STARTTLS, then AUTH, required (default 127.0.0.1:2587)\n"
    "  --smtps ADDR               implicit TLS, AUTH required (default 127.0.0.1:2465)\n"
    "  --ports-file PATH          write the bound addresses as JSON once listening\n"
    "\n"
    "TLS and AUTH:\n"
    "  --certs-dir DIR            use the test PKI in DIR, or write a new one there (clients trust "
    "DIR/ca.pem)\n"
    "  --cert FILE                present this certificate (PEM) instead of the generated one\n"
    "  --key FILE                 the private key of --cert (PEM)\n"
    "  --no-tls                   no STARTTLS and no implicit-TLS listener\n"
    "  --user NAME:PASSWORD       an account for AUTH (repeatable); with none, any credentials are accepted\n"
    "\n"
    "Admin socket (newline-delimited JSON, see docs/admin.md):\n"
    "  --admin ADDR               HOST:PORT, unix:PATH or off; repeatable (default 127.0.0.1:2580)\n"
    "  --admin-remote             allow a non-loopback admin address (inside a container)\n"
    "  --admin-token TOKEN        require \"token\": TOKEN in every admin request\n"
    "  --admin-allow-paths DIRS   more directories (DIR:DIR) whose files profile.load may read\n"
    "\n"
    "Faults:\n"
    "  --profile FILE|NAME        the fault profile in force at start: a file, or the name of a shipped\n"
    "                             profile (smtpfault profiles; docs/profiles.md, docs/errors.md)\n"
    "  --no-magic                 magic addresses (rcpt550@..., mail452@...) behave like any other\n"
    "\n"
    "Protocol:\n"
    "  --hostname NAME            name in the greeting and replies (default localhost)\n"
    "  --max-message-size BYTES   SIZE limit, K/M/G suffixes allowed (default 35M)\n"
    "  --max-recipients N         recipients per message, at least 100 (default 1000)\n"
    "  --max-errors N             bad commands before 421 and close (default 20)\n"
    "  --idle-timeout SECONDS     idle time before 421 and close (default 300)\n"
    "  --max-inflight-bytes BYTES message content all sessions may hold at once; past it 452 (default 256M)\n"
    "  --max-connections N        live SMTP connections; past it 421 and close (default 16384)\n"
    "\n"
    "Captured messages:\n"
    "  --store-max-messages N     messages kept in memory, oldest evicted first (default 10000)\n"
    "  --store-max-bytes BYTES    bytes kept in memory (default 256M)\n"
    "  --store-dir DIR            also write ID.eml and ID.json per message, fsynced before the 250\n"
    "\n"
    "Process:\n"
    "  --drain-timeout SECONDS    on SIGTERM/SIGINT/SIGHUP, time given to transactions in flight (default "
    "5)\n"
    "  --log-format text|json     transcript format on stderr (default text)\n"
    "  --log-level LEVEL          error, warn, info (default: the transcript) or debug\n"
    "  -q, --quiet                same as --log-level warn\n"
    "  -h, --help                 show this help and exit\n"
    "  -V, --version              show the version and exit\n"
    "\n"
    "Environment: every option can also be given as SMTPFAULT_<OPTION>, dashes as underscores\n"
    "(SMTPFAULT_PROFILE=NAME, SMTPFAULT_ADMIN_TOKEN=secret, SMTPFAULT_SMTP=0.0.0.0:2525, ...). Flags take\n"
    "true or false; SMTPFAULT_USER and SMTPFAULT_ADMIN take several values separated by spaces. The command\n"
    "line wins over the environment. SMTPFAULT_PROFILES lists directories searched for profiles by name.\n";

enum {
    OPT_SMTP = 256,
    OPT_SUBMISSION,
    OPT_SMTPS,
    OPT_CERTS_DIR,
    OPT_CERT,
    OPT_KEY,
    OPT_NO_TLS,
    OPT_USER,
    OPT_PROFILE,
    OPT_NO_MAGIC,
    OPT_ADMIN,
    OPT_ADMIN_REMOTE,
    OPT_ADMIN_TOKEN,
    OPT_ADMIN_ALLOW_PATHS,
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
    OPT_MAX_INFLIGHT_BYTES,
    OPT_MAX_CONNECTIONS,
};

static const struct option long_options[] = {
    {"smtp", required_argument, NULL, OPT_SMTP},
    {"submission", required_argument, NULL, OPT_SUBMISSION},
    {"smtps", required_argument, NULL, OPT_SMTPS},
    {"certs-dir", required_argument, NULL, OPT_CERTS_DIR},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"no-tls", no_argument, NULL, OPT_NO_TLS},
    {"user", required_argument, NULL, OPT_USER},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"no-magic", no_argument, NULL, OPT_NO_MAGIC},
    {"admin", required_argument, NULL, OPT_ADMIN},
    {"admin-remote", no_argument, NULL, OPT_ADMIN_REMOTE},
    {"admin-token", required_argument, NULL, OPT_ADMIN_TOKEN},
    {"admin-allow-paths", required_argument, NULL, OPT_ADMIN_ALLOW_PATHS},
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
    {"max-inflight-bytes", required_argument, NULL, OPT_MAX_INFLIGHT_BYTES},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void print_usage(FILE *out);

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
    snprintf(range, sizeof(range), "a number from %llu to %llu", (unsigned long long)min,
             (unsigned long long)max);
    fprintf(stderr, "smtpfault: %s: '%s' is not %s\n", name, value, range);
    return -1;
}

/*
 * apply_option - one setting from the command line or the environment. name is how the user gave it
 * ("--max-recipients" or "SMTPFAULT_MAX_RECIPIENTS"), for the error message. -1 to go on, or an exit code.
 */
static int apply_option(config *cfg, int opt, const char *name, const char *value)
{
    uint64_t v;
    char err[256];
    switch (opt) {
    case OPT_SMTP:
    case OPT_SUBMISSION:
    case OPT_SMTPS: {
        listener_kind kind = opt == OPT_SMTP         ? LISTENER_SMTP
                             : opt == OPT_SUBMISSION ? LISTENER_SUBMISSION
                                                     : LISTENER_SMTPS;
        if (config_parse_addr(value, &cfg->listen[kind], err, sizeof(err)) != 0)
            return usage_error("%s: %s", name, err);
        break;
    }
    case OPT_CERTS_DIR:
        cfg->certs_dir = value;
        break;
    case OPT_CERT:
        cfg->cert_file = value;
        break;
    case OPT_KEY:
        cfg->key_file = value;
        break;
    case OPT_NO_TLS:
        cfg->no_tls = 1;
        break;
    case OPT_USER:
        if (config_add_user(cfg, value, err, sizeof(err)) != 0)
            return usage_error("%s: %s", name, err);
        break;
    case OPT_PROFILE:
        cfg->profile = value;
        break;
    case OPT_NO_MAGIC:
        cfg->magic = 0;
        break;
    case OPT_ADMIN:
        if (config_add_admin(cfg, value, err, sizeof(err)) != 0)
            return usage_error("%s: %s", name, err);
        break;
    case OPT_ADMIN_REMOTE:
        cfg->admin_remote = 1;
        break;
    case OPT_ADMIN_TOKEN:
        if (value[0] == '\0')
            return usage_error("%s: the token cannot be empty", name);
        cfg->admin_token = value;
        break;
    case OPT_ADMIN_ALLOW_PATHS:
        cfg->admin_allow_paths = value;
        break;
    case OPT_PORTS_FILE:
        cfg->ports_file = value;
        break;
    case OPT_HOSTNAME:
        if (value[0] == '\0' || strlen(value) >= sizeof(cfg->hostname) || strpbrk(value, " \r\n\t"))
            return usage_error("%s: '%s' is not a host name", name, value);
        snprintf(cfg->hostname, sizeof(cfg->hostname), "%s", value);
        break;
    case OPT_MAX_MESSAGE_SIZE:
        if (number_option(name, value, 1024, UINT64_C(1) << 40, &cfg->max_message_size) != 0)
            return EXIT_USAGE;
        break;
    case OPT_MAX_RECIPIENTS:
        if (number_option(name, value, 100, 1000000, &v) != 0)
            return EXIT_USAGE;
        cfg->max_recipients = (size_t)v;
        break;
    case OPT_MAX_ERRORS:
        if (number_option(name, value, 1, 1000000, &v) != 0)
            return EXIT_USAGE;
        cfg->max_errors = (unsigned)v;
        break;
    case OPT_IDLE_TIMEOUT:
        if (number_option(name, value, 1, 86400, &v) != 0)
            return EXIT_USAGE;
        cfg->idle_timeout_s = (unsigned)v;
        break;
    case OPT_STORE_MAX_MESSAGES:
        if (number_option(name, value, 0, 100000000, &v) != 0)
            return EXIT_USAGE;
        cfg->store_max_messages = (size_t)v;
        break;
    case OPT_STORE_MAX_BYTES:
        if (number_option(name, value, 0, UINT64_C(1) << 40, &cfg->store_max_bytes) != 0)
            return EXIT_USAGE;
        break;
    case OPT_STORE_DIR:
        cfg->store_dir = value;
        break;
    case OPT_DRAIN_TIMEOUT:
        if (number_option(name, value, 0, 3600, &v) != 0)
            return EXIT_USAGE;
        cfg->drain_timeout_s = (unsigned)v;
        break;
    case OPT_MAX_INFLIGHT_BYTES:
        if (number_option(name, value, 1024, UINT64_C(1) << 40, &cfg->max_inflight_bytes) != 0)
            return EXIT_USAGE;
        break;
    case OPT_MAX_CONNECTIONS:
        if (number_option(name, value, 1, 1000000, &v) != 0)
            return EXIT_USAGE;
        cfg->max_connections = (size_t)v;
        break;
    case OPT_LOG_FORMAT: {
        int f = log_parse_format(value);
        if (f < 0)
            return usage_error("%s: '%s' is not text or json", name, value);
        cfg->log_format = (log_format)f;
        break;
    }
    case OPT_LOG_LEVEL: {
        int l = log_parse_level(value);
        if (l < 0)
            return usage_error("%s: '%s' is not error, warn, info or debug", name, value);
        cfg->log_level = (log_level)l;
        break;
    }
    default:
        break;
    }
    return -1;
}

/* env_name - SMTPFAULT_ and the option's name in capitals, dashes as underscores */
static void env_name(const char *option, char *out, size_t outsz)
{
    size_t o = (size_t)snprintf(out, outsz, "SMTPFAULT_");
    for (const char *p = option; *p && o + 1 < outsz; p++)
        out[o++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[o] = '\0';
}

/* env_flag - a no-argument option given in the environment: 1 (on), 0 (off), -1 (not a boolean) */
static int env_flag(const char *value)
{
    static const char *const on[] = {"1", "true", "yes", "on"}, *const off[] = {"0", "false", "no", "off",
                                                                                ""};
    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++)
        if (strcasecmp(value, on[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++)
        if (strcasecmp(value, off[i]) == 0)
            return 0;
    return -1;
}

/*
 * apply_environment - every option also reads SMTPFAULT_<NAME> (the command line wins, being applied
 * after). Repeatable options (--user, --admin) take several values separated by spaces.
 */
static int apply_environment(config *cfg)
{
    for (const struct option *o = long_options; o->name != NULL; o++) {
        if (o->val < 256)
            continue; /* --help, --version, --quiet */
        char name[64];
        env_name(o->name, name, sizeof(name));
        const char *value = getenv(name);
        /* Unset and empty are the same: compose files pass ${VAR:-} through for options left out. */
        if (value == NULL || value[0] == '\0')
            continue;
        if (o->has_arg == no_argument) {
            int on = env_flag(value);
            if (on < 0)
                return usage_error("%s: '%s' is not true or false", name, value);
            if (on && apply_option(cfg, o->val, name, value) >= 0)
                return EXIT_USAGE;
            continue;
        }
        if (o->val != OPT_USER && o->val != OPT_ADMIN) {
            int rc = apply_option(cfg, o->val, name, value);
            if (rc >= 0)
                return rc;
            continue;
        }
        char *copy = strdup(value), *save = NULL;
        int rc = copy ? -1 : EXIT_FAILURE;
        for (char *t = copy ? strtok_r(copy, " \t\n", &save) : NULL; t != NULL && rc < 0;
             t = strtok_r(NULL, " \t\n", &save))
            rc = apply_option(cfg, o->val, name, t);
        free(copy); /* the values were copied by config_add_user / config_add_admin */
        if (rc >= 0)
            return rc;
    }
    return -1;
}

/* parse_args - fill cfg from the environment, then argv; returns -1 to go on, or an exit code */
static int parse_args(int argc, char **argv, config *cfg)
{
    int opt, idx;
    int rc = apply_environment(cfg);
    if (rc >= 0)
        return rc;
    cfg->admin_given = cfg->users_given = 0; /* the first --admin or --user replaces the environment's */
    const char *inexact = cli_inexact_option(argc, argv, long_options, 0);
    if (inexact != NULL)
        return usage_error("unknown option '%.*s'", (int)strcspn(inexact, "="), inexact);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":qhV", long_options, &idx)) != -1) {
        if (opt >= 256) {
            char name[64];
            snprintf(name, sizeof(name), "--%s", long_options[idx].name);
            rc = apply_option(cfg, opt, name, optarg);
            if (rc >= 0)
                return rc;
            continue;
        }
        switch (opt) {
        case 'q':
            cfg->log_level = LOG_WARN;
            break;
        case 'h':
            print_usage(stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("smtpfault %s%s%s (libuv %s, wolfSSL %s, cJSON %s)\n", SMTPFAULT_VERSION,
                   SMTPFAULT_GIT_COMMIT[0] ? "+" : "", SMTPFAULT_GIT_COMMIT, uv_version_string(),
                   LIBWOLFSSL_VERSION_STRING, cJSON_Version());
            return EXIT_SUCCESS;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s' (the subcommands come first: smtpfault help)",
                           argv[optind]);
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL))
        return usage_error("--cert and --key go together");
    if (cfg->no_tls && (cfg->cert_file || cfg->certs_dir))
        return usage_error("--no-tls cannot be combined with --cert or --certs-dir");
    /* Refused here, before any listener opens, rather than after the SMTP ports are already bound. */
    for (size_t i = 0; i < cfg->nadmin && !cfg->admin_remote; i++)
        if (!cfg->admin[i].unix_path[0] && !config_host_is_loopback(cfg->admin[i].tcp.host))
            return usage_error("--admin %s is not a loopback address: add --admin-remote to allow it "
                               "(and set --admin-token)",
                               cfg->admin[i].tcp.host);
    return -1;
}

/* print_errors - every error of a profile, one per line, on stderr */
static void print_errors(const fault_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msgs[i]);
}

/* check_one - compile the profile in path, print "PATH: ok (...)" or every error; 0 when valid */
static int check_one(const char *path)
{
    fault_errors errs = {NULL, 0};
    fault_profile *p = profiles_load(path, &errs);
    if (p == NULL) {
        print_errors(&errs);
    } else {
        const fault_settings *fs = fault_profile_settings(p);
        printf("%s: ok (%s%s%s, %zu rule%s)\n", path, fs->name[0] ? "\"" : "",
               fs->name[0] ? fs->name : "unnamed", fs->name[0] ? "\"" : "", fault_profile_nrules(p),
               fault_profile_nrules(p) == 1 ? "" : "s");
    }
    fault_errors_free(&errs);
    int ok = p != NULL;
    fault_profile_unref(p);
    return ok ? 0 : -1;
}

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* check_dir - every *.json in dir, in name order; 0 when all are valid, -1 otherwise or when there is none */
static int check_dir(const char *dir)
{
    uv_fs_t req;
    int r = uv_fs_scandir(NULL, &req, dir, 0, NULL);
    if (r < 0) {
        fprintf(stderr, "%s: cannot read the directory: %s\n", dir, uv_strerror(r));
        uv_fs_req_cleanup(&req);
        return -1;
    }
    char **paths = calloc((size_t)r + 1, sizeof(*paths));
    size_t n = 0;
    uv_dirent_t ent;
    while (paths != NULL && uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        size_t len = strlen(ent.name);
        if (len > 5 && strcmp(ent.name + len - 5, ".json") == 0 && ent.type != UV_DIRENT_DIR &&
            (paths[n] = malloc(strlen(dir) + len + 2)) != NULL)
            sprintf(paths[n++], "%s/%s", dir, ent.name);
    }
    uv_fs_req_cleanup(&req);
    if (paths == NULL) {
        fprintf(stderr, "smtpfault: out of memory\n");
        return -1;
    }
    qsort(paths, n, sizeof(*paths), path_cmp);
    int bad = n == 0;
    if (n == 0)
        fprintf(stderr, "%s: no *.json profile in this directory\n", dir);
    for (size_t i = 0; i < n; i++) {
        bad |= check_one(paths[i]) != 0;
        free(paths[i]);
    }
    free(paths);
    return bad ? -1 : 0;
}

/* is_dir - path names a directory */
static int is_dir(const char *path)
{
    uv_fs_t req;
    int dir = uv_fs_stat(NULL, &req, path, NULL) == 0 && S_ISDIR(req.statbuf.st_mode);
    uv_fs_req_cleanup(&req);
    return dir;
}

/* cmd_check - `smtpfault check FILE|NAME|DIR...`: validate each, report every error, exit 1 if any is invalid
 */
static int cmd_check(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: smtpfault check FILE|NAME|DIR...\n"
               "Validate fault profiles: files, names of shipped profiles (smtpfault profiles), or every\n"
               "*.json in a directory. Every error is printed with its JSON path; the exit status is 0 when\n"
               "all are valid, 1 otherwise.\n");
        return EXIT_SUCCESS;
    }
    if (argc < 2) {
        fprintf(stderr, "Usage: smtpfault check FILE|NAME|DIR...\n"
                        "Try 'smtpfault help check' for more information.\n");
        return EXIT_USAGE;
    }
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        char path[PROFILES_PATH_MAX];
        if (is_dir(argv[i])) {
            bad |= check_dir(argv[i]) != 0;
        } else if (profiles_find(argv[i], path, sizeof(path)) != 0) {
            size_t len = strlen(argv[i]);
            if (strchr(argv[i], '/') != NULL || (len > 5 && strcmp(argv[i] + len - 5, ".json") == 0))
                bad |= check_one(argv[i]) != 0; /* a file: say why it cannot be read */
            else {
                fprintf(stderr, "%s: no such file or shipped profile (smtpfault profiles lists them)\n",
                        argv[i]);
                bad = 1;
            }
        } else {
            bad |= check_one(path) != 0;
        }
    }
    return bad ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* cmd_profiles - `smtpfault profiles [NAME]`: the catalog, or one profile's JSON as it is shipped */
static int cmd_profiles(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: smtpfault profiles [NAME|FILE]\n"
               "Without an argument, list the shipped profiles (and those in $SMTPFAULT_PROFILES) with the\n"
               "first sentence of each description. With a name, print that profile's JSON, to read it or\n"
               "to start a profile of your own from it.\n");
        return EXIT_SUCCESS;
    }
    if (argc == 1)
        return profiles_list();
    if (argc > 2)
        return usage_error("profiles: one name at a time (smtpfault profiles [NAME])");
    char path[PROFILES_PATH_MAX];
    if (profiles_find(argv[1], path, sizeof(path)) != 0) {
        fprintf(stderr, "smtpfault: profiles: no profile named '%s' (smtpfault profiles lists them)\n",
                argv[1]);
        return EXIT_FAILURE;
    }
    char *text = NULL;
    size_t len = 0;
    int r = fsutil_read(path, PROFILES_FILE_MAX, &text, &len);
    if (r != 0) {
        fprintf(stderr, "smtpfault: profiles: %s: %s\n", path, uv_strerror(r));
        return EXIT_FAILURE;
    }
    fwrite(text, 1, len, stdout);
    if (len > 0 && text[len - 1] != '\n')
        putchar('\n');
    free(text);
    return EXIT_SUCCESS;
}

/* cmd_certs - `smtpfault certs DIR [--hostname NAME]`: write a test PKI */
static int cmd_certs(int argc, char **argv)
{
    const char *dir = NULL, *host = "localhost";
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--hostname") == 0) && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: smtpfault certs DIR [--hostname NAME]\n"
                   "Write a test CA and server certificates (valid, expired, wrong host, self-signed, "
                   "untrusted)\n"
                   "to DIR, with a README saying which is which. Start the server with --certs-dir DIR to "
                   "use them.\n");
            return EXIT_SUCCESS;
        } else if (dir == NULL && argv[i][0] != '-')
            dir = argv[i];
        else
            return usage_error("certs: unexpected argument '%s'", argv[i]);
    }
    if (dir == NULL)
        return usage_error("certs: which directory? (smtpfault certs DIR)");
    cert_set cs;
    char err[300];
    if (cert_set_generate(&cs, host, err, sizeof(err)) != 0 ||
        cert_set_write(&cs, dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "smtpfault: certs: %s\n", err);
        cert_set_free(&cs);
        return EXIT_FAILURE;
    }
    cert_set_free(&cs);
    printf("wrote a test PKI for %s to %s (see %s/README); clients trust %s/ca.pem\n", host, dir, dir, dir);
    return EXIT_SUCCESS;
}

static int cmd_help(int argc, char **argv);

/* The subcommands: `smtpfault NAME ARGS...`, each given argv with argv[0] == NAME. */
typedef struct subcommand {
    const char *name;
    const char *synopsis;
    const char *summary;
    int (*run)(int argc, char **argv);
} subcommand;

static const subcommand subcommands[] = {
    {"check", "check FILE|NAME|DIR...", "validate fault profiles (exit 0 when all are valid)", cmd_check},
    {"profiles", "profiles [NAME]", "list the shipped profiles, or print one", cmd_profiles},
    {"ctl", "ctl COMMAND [ARGS]", "drive a running server through its admin socket", ctl_main},
    {"certs", "certs DIR", "write a test PKI (CA, valid and broken certificates) to DIR", cmd_certs},
    {"help", "help [SUBCOMMAND]", "this help, or a subcommand's", cmd_help},
};
#define NSUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

/* print_usage - the server's usage with every subcommand */
static void print_usage(FILE *out)
{
    fputs(usage_head, out);
    fputs("Subcommands:\n", out);
    for (size_t i = 0; i < NSUBCOMMANDS; i++)
        fprintf(out, "  %-26s %s\n", subcommands[i].synopsis, subcommands[i].summary);
    fputs("\n", out);
    fputs(usage_text, out);
}

static const subcommand *find_subcommand(const char *name)
{
    for (size_t i = 0; i < NSUBCOMMANDS; i++)
        if (strcmp(subcommands[i].name, name) == 0)
            return &subcommands[i];
    return NULL;
}

/* cmd_help - `smtpfault help [SUBCOMMAND]`: the usage, or the subcommand's own --help */
static int cmd_help(int argc, char **argv)
{
    if (argc == 1) {
        print_usage(stdout);
        return EXIT_SUCCESS;
    }
    const subcommand *sub = argc == 2 ? find_subcommand(argv[1]) : NULL;
    if (sub == NULL)
        return usage_error(argc == 2 ? "help: no subcommand '%s'" : "help: one subcommand at a time%.0s",
                           argv[1]);
    if (sub->run == cmd_help)
        return cmd_help(1, argv);
    char *sub_argv[] = {(char *)sub->name, (char *)"--help", NULL};
    return sub->run(2, sub_argv);
}

int main(int argc, char **argv)
{
    const subcommand *sub = argc > 1 ? find_subcommand(argv[1]) : NULL;
    if (sub != NULL)
        return sub->run(argc - 1, argv + 1);
    if (argc > 1 && argv[1][0] != '-')
        return usage_error("unknown subcommand '%s'", argv[1]);
    config cfg;
    config_defaults(&cfg);
    int rc = parse_args(argc, argv, &cfg);
    if (rc >= 0) {
        config_free(&cfg);
        return rc;
    }
    fault_profile *profile;
    if (cfg.profile != NULL) {
        fault_errors errs = {NULL, 0};
        char path[PROFILES_PATH_MAX];
        if (profiles_find(cfg.profile, path, sizeof(path)) != 0) {
            fprintf(stderr,
                    "smtpfault: --profile %s: no such file or shipped profile (see smtpfault profiles)\n",
                    cfg.profile);
            config_free(&cfg);
            return EXIT_USAGE;
        }
        profile = profiles_load(path, &errs);
        if (profile == NULL) {
            fprintf(stderr, "smtpfault: --profile %s is not valid:\n", cfg.profile);
            print_errors(&errs);
            fault_errors_free(&errs);
            config_free(&cfg);
            return EXIT_USAGE;
        }
    } else {
        profile = fault_profile_default();
    }
    log_setup(stderr, cfg.log_format, cfg.log_level);
    signal(SIGPIPE, SIG_IGN); /* a vanished client is a write error, not a reason to die */

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "smtpfault: cannot start the event loop\n");
        return EXIT_FAILURE;
    }
    server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL || profile == NULL) {
        fprintf(stderr, "smtpfault: out of memory\n");
        return EXIT_FAILURE;
    }
    int started = server_start(srv, &loop, &cfg, profile) == 0;
    fault_profile_unref(profile);
    if (started)
        log_server(LOG_INFO, "smtpfault %s ready", SMTPFAULT_VERSION);
    uv_run(&loop, UV_RUN_DEFAULT);
    server_free(srv);
    free(srv);
    if (uv_loop_close(&loop) != 0)
        log_server(LOG_WARN, "event loop closed with handles still open");
    config_free(&cfg);
    return started ? EXIT_SUCCESS : EXIT_FAILURE;
}
