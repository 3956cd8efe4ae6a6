/*
 * options.c - the option table, and what reads it: defaults, the command line, the environment, the usage.
 *
 * One row per option, as Redis's config.c declares its settings: the long name (the environment name is
 * SMTPFAULT_ and the name in capitals, dashes as underscores), its kind, where the value goes in config,
 * its range, its default as it would be typed, and its help line. Adding an option is adding a row.
 */
#include "options.h"

#include <ctype.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#define OPTION_VAL_BASE 256 /* getopt_long values of rows without a short name: OPTION_VAL_BASE + row */
#define OPTION_NAME_MAX 64  /* "--max-inflight-bytes", "SMTPFAULT_ADMIN_ALLOW_PATHS" */
#define OPTION_ERR_MAX  256
#define USAGE_COLUMN    26 /* "  --name ARG" is padded to this, then the help */
#define TiB             (UINT64_C(1) << 40)

typedef enum option_kind {
    KIND_ADDR,    /* a listener address: the listen_addr at offset */
    KIND_FLAG,    /* no value: the int at offset becomes min when given, !min by default */
    KIND_STRING,  /* the const char * at offset points at the value itself */
    KIND_NUMBER,  /* the unsigned, size_t or uint64_t at offset, within [min, max], K/M/G suffixes */
    KIND_ENUM,    /* the enum at offset, from parse; expected names the values for the error */
    KIND_CHECKED, /* set validates the value and stores it */
    KIND_LIST,    /* repeatable: set adds one value; in the environment, several separated by spaces */
    KIND_ACTION,  /* command line only (-q, -h, -V): set, then the result of parsing is result */
} option_kind;

typedef struct option_row {
    const char *section; /* the usage's heading, printed where it changes */
    const char *name;
    char short_name; /* or 0 */
    const char *arg; /* the value's name in the usage; NULL: the option takes no value */
    option_kind kind;
    size_t offset, size; /* the field of config */
    uint64_t min, max;
    const char *deflt;   /* as it would be typed; NULL: none (zero) */
    int default_in_help; /* the help says the default its own way */
    int (*set)(config *cfg, const char *value, char *err, size_t errsz);
    int (*parse)(const char *value);
    const char *expected;
    int result;
    const char *help; /* a newline continues it under the help column */
} option_row;

static int set_hostname(config *cfg, const char *value, char *err, size_t errsz)
{
    if (value[0] == '\0' || strlen(value) >= sizeof(cfg->hostname) || strpbrk(value, " \r\n\t")) {
        snprintf(err, errsz, "'%s' is not a host name", value);
        return -1;
    }
    snprintf(cfg->hostname, sizeof(cfg->hostname), "%s", value);
    return 0;
}

static int set_admin_token(config *cfg, const char *value, char *err, size_t errsz)
{
    if (value[0] == '\0') {
        snprintf(err, errsz, "the token cannot be empty");
        return -1;
    }
    cfg->admin_token = value;
    return 0;
}

/* set_scope_ports - LOW-HIGH, 1 to 65535, LOW <= HIGH */
static int set_scope_ports(config *cfg, const char *value, char *err, size_t errsz)
{
    uint64_t lo, hi;
    const char *dash = strchr(value, '-');
    char low[8];
    size_t n = dash ? (size_t)(dash - value) : 0;
    if (dash == NULL || n == 0 || n >= sizeof(low) || strpbrk(value, "KMGkmg") != NULL) {
        snprintf(err, errsz, "'%s' is not a port range LOW-HIGH (for example 30000-30999)", value);
        return -1;
    }
    memcpy(low, value, n);
    low[n] = '\0';
    if (config_parse_u64(low, 1, 65535, &lo) != 0 || config_parse_u64(dash + 1, 1, 65535, &hi) != 0 ||
        lo > hi) {
        snprintf(err, errsz, "'%s' is not a port range LOW-HIGH with 1 <= LOW <= HIGH <= 65535", value);
        return -1;
    }
    cfg->scope_port_low = (unsigned)lo;
    cfg->scope_port_high = (unsigned)hi;
    return 0;
}

static int set_quiet(config *cfg, const char *value, char *err, size_t errsz)
{
    (void)value, (void)err, (void)errsz;
    cfg->log_level = LOG_WARN;
    return 0;
}

/* The row makers, one per kind: S the usage section, N the long name, A the value's name in the usage. */
#define FIELD(f) .offset = offsetof(config, f), .size = sizeof(((config *)0)->f)
#define ADDR(S, N, which, deflt_, H)                                                                      \
    {                                                                                                     \
        .section = S, .name = N, .arg = "ADDR", .kind = KIND_ADDR, FIELD(listen[which]), .deflt = deflt_, \
        .help = H                                                                                         \
    }
#define FLAG(S, N, field, on, H)                                                       \
    {                                                                                  \
        .section = S, .name = N, .kind = KIND_FLAG, FIELD(field), .min = on, .help = H \
    }
#define STRING(S, N, A, field, H)                                                       \
    {                                                                                   \
        .section = S, .name = N, .arg = A, .kind = KIND_STRING, FIELD(field), .help = H \
    }
#define NUMBER(S, N, A, field, lo, hi, deflt_, H)                                                   \
    {                                                                                               \
        .section = S, .name = N, .arg = A, .kind = KIND_NUMBER, FIELD(field), .min = lo, .max = hi, \
        .deflt = deflt_, .help = H                                                                  \
    }
#define ENUM(S, N, A, field, parse_, expected_, deflt_, in_help, H)                          \
    {                                                                                        \
        .section = S, .name = N, .arg = A, .kind = KIND_ENUM, FIELD(field), .parse = parse_, \
        .expected = expected_, .deflt = deflt_, .default_in_help = in_help, .help = H        \
    }
#define CHECKED(S, N, A, set_, deflt_, H)                                                                \
    {                                                                                                    \
        .section = S, .name = N, .arg = A, .kind = KIND_CHECKED, .set = set_, .deflt = deflt_, .help = H \
    }
#define LIST(S, N, A, set_, deflt_, H)                                                                \
    {                                                                                                 \
        .section = S, .name = N, .arg = A, .kind = KIND_LIST, .set = set_, .deflt = deflt_, .help = H \
    }
#define ACTION(S, short_, N, set_, result_, H)                                                              \
    {                                                                                                       \
        .section = S, .name = N, .short_name = short_, .kind = KIND_ACTION, .set = set_, .result = result_, \
        .help = H                                                                                           \
    }

static const char listeners[] = "Listeners (HOST:PORT, [IPV6]:PORT or off; port 0 picks a free port)";
static const char tls_auth[] = "TLS and AUTH";
static const char admin_socket[] = "Admin socket (newline-delimited JSON, see docs/admin.md)";
static const char faults[] = "Faults";
static const char scopes[] = "Scopes (virtual servers for parallel tests, see docs/scopes.md)";
static const char protocol[] = "Protocol";
static const char captured[] = "Captured messages";
static const char process[] = "Process";

/* The options, in the order of the usage. The three listeners are a real provider's ports above 1024. */
static const option_row rows[] = {
    ADDR(listeners, "smtp", LISTENER_SMTP, "127.0.0.1:2525", "SMTP, STARTTLS offered"),
    ADDR(listeners, "submission", LISTENER_SUBMISSION, "127.0.0.1:2587",
         "submission: STARTTLS, then AUTH, required"),
    ADDR(listeners, "smtps", LISTENER_SMTPS, "127.0.0.1:2465", "implicit TLS, AUTH required"),
    STRING(listeners, "ports-file", "PATH", ports_file, "write the bound addresses as JSON once listening"),
    STRING(tls_auth, "certs-dir", "DIR", certs_dir,
           "use the test PKI in DIR, or write a new one there (clients trust DIR/ca.pem)"),
    STRING(tls_auth, "cert", "FILE", cert_file,
           "present this certificate (PEM) instead of the generated one"),
    STRING(tls_auth, "key", "FILE", key_file, "the private key of --cert (PEM)"),
    FLAG(tls_auth, "no-tls", no_tls, 1, "no STARTTLS and no implicit-TLS listener"),
    LIST(tls_auth, "user", "NAME:PASSWORD", config_add_user, NULL,
         "an account for AUTH (repeatable); with none, any credentials are accepted"),
    LIST(admin_socket, "admin", "ADDR", config_add_admin, "127.0.0.1:2580",
         "HOST:PORT, unix:PATH or off; repeatable"),
    FLAG(admin_socket, "admin-remote", admin_remote, 1,
         "allow a non-loopback admin address (inside a container)"),
    CHECKED(admin_socket, "admin-token", "TOKEN", set_admin_token, NULL,
            "require \"token\": TOKEN in every admin request"),
    STRING(admin_socket, "admin-allow-paths", "DIRS", admin_allow_paths,
           "more directories (DIR:DIR) whose files profile.load may read"),
    STRING(faults, "profile", "FILE|NAME", profile,
           "the fault profile in force at start: a file, or the name of a shipped\n"
           "profile (smtpfault profiles; docs/profiles.md, docs/errors.md)"),
    FLAG(faults, "no-magic", magic, 0, "magic addresses (rcpt550@..., mail452@...) behave like any other"),
    NUMBER(scopes, "max-scopes", "N", max_scopes, 0, 4096, "256",
           "scopes alive at once (0: scope.create is refused)"),
    CHECKED(scopes, "scope-ports", "LOW-HIGH", set_scope_ports, NULL,
            "draw scope listeners' ports from this range (default: any free port)"),
    CHECKED(protocol, "hostname", "NAME", set_hostname, "localhost", "name in the greeting and replies"),
    /* 35M: in the range big providers advertise */
    NUMBER(protocol, "max-message-size", "BYTES", max_message_size, 1024, TiB, "35M",
           "SIZE limit, K/M/G suffixes allowed"),
    NUMBER(protocol, "max-recipients", "N", max_recipients, 100, 1000000, "1000",
           "recipients per message, at least 100"),
    NUMBER(protocol, "max-errors", "N", max_errors, 1, 1000000, "20", "bad commands before 421 and close"),
    /* RFC 5321 4.5.3.2.7: at least 5 minutes */
    NUMBER(protocol, "idle-timeout", "SECONDS", idle_timeout_s, 1, 86400, "300",
           "idle time before 421 and close"),
    /* 256M: about 7 messages of the default maximum size */
    NUMBER(protocol, "max-inflight-bytes", "BYTES", max_inflight_bytes, 1024, TiB, "256M",
           "message content all sessions may hold at once; past it 452"),
    /* above the 12,000 connections bench/load.py holds */
    NUMBER(protocol, "max-connections", "N", max_connections, 1, 1000000, "16384",
           "live SMTP connections; past it 421 and close"),
    NUMBER(captured, "store-max-messages", "N", store_max_messages, 0, 100000000, "10000",
           "messages kept in memory, oldest evicted first"),
    NUMBER(captured, "store-max-bytes", "BYTES", store_max_bytes, 0, TiB, "256M", "bytes kept in memory"),
    STRING(captured, "store-dir", "DIR", store_dir,
           "also write ID.eml and ID.json per message, fsynced before the 250"),
    NUMBER(process, "drain-timeout", "SECONDS", drain_timeout_s, 0, 3600, "5",
           "on SIGTERM/SIGINT/SIGHUP, time given to transactions in flight"),
    ENUM(process, "log-format", "text|json", log_format, log_parse_format, "text or json", "text", 0,
         "transcript format on stderr"),
    ENUM(process, "log-level", "LEVEL", log_level, log_parse_level, "error, warn, info or debug", "info", 1,
         "error, warn, info (default: the transcript) or debug"),
    ACTION(process, 'q', "quiet", set_quiet, OPTIONS_RUN, "same as --log-level warn"),
    ACTION(process, 'h', "help", NULL, OPTIONS_HELP, "show this help and exit"),
    ACTION(process, 'V', "version", NULL, OPTIONS_VERSION, "show the version and exit"),
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static const char environment_text[] =
    "Environment: every option can also be given as SMTPFAULT_<OPTION>, dashes as underscores\n"
    "(SMTPFAULT_PROFILE=NAME, SMTPFAULT_ADMIN_TOKEN=secret, SMTPFAULT_SMTP=0.0.0.0:2525, ...). Flags take\n"
    "true or false; SMTPFAULT_USER and SMTPFAULT_ADMIN take several values separated by spaces. The command\n"
    "line wins over the environment. SMTPFAULT_PROFILES lists directories searched for profiles by name.\n";

/* store_unsigned - v into the unsigned integer (or enum) field of size bytes at p */
static void store_unsigned(void *p, size_t size, uint64_t v)
{
    if (size == sizeof(uint64_t)) {
        memcpy(p, &v, sizeof(v));
    } else {
        unsigned u = (unsigned)v;
        memcpy(p, &u, sizeof(u));
    }
}

/*
 * set_value - one value for row into cfg. 0; -1 with the reason in err; -2 with the reason in err for a
 * number out of range (that error has always come without the pointer to --help).
 */
static int set_value(config *cfg, const option_row *row, const char *value, char *err, size_t errsz)
{
    char *field = (char *)cfg + row->offset;
    uint64_t v;
    int e;
    switch (row->kind) {
    case KIND_ADDR:
        return config_parse_addr(value, (listen_addr *)(void *)field, err, errsz);
    case KIND_FLAG:
        store_unsigned(field, row->size, row->min);
        return 0;
    case KIND_STRING:
        memcpy(field, &value, sizeof(value));
        return 0;
    case KIND_NUMBER:
        if (config_parse_u64(value, row->min, row->max, &v) != 0) {
            snprintf(err, errsz, "'%s' is not a number from %llu to %llu", value,
                     (unsigned long long)row->min, (unsigned long long)row->max);
            return -2;
        }
        store_unsigned(field, row->size, v);
        return 0;
    case KIND_ENUM:
        if ((e = row->parse(value)) < 0) {
            snprintf(err, errsz, "'%s' is not %s", value, row->expected);
            return -1;
        }
        store_unsigned(field, row->size, (uint64_t)e);
        return 0;
    case KIND_CHECKED:
    case KIND_LIST:
    case KIND_ACTION:
        return row->set ? row->set(cfg, value, err, errsz) : 0;
    }
    return 0;
}

/*
 * apply - one value for row, given as name ("--max-recipients" or "SMTPFAULT_MAX_RECIPIENTS", for the
 * error). OPTIONS_RUN to go on, else what parsing results in: an exit code (the error printed), or help.
 */
static int apply(config *cfg, const option_row *row, const char *name, const char *value)
{
    char err[OPTION_ERR_MAX];
    int r = set_value(cfg, row, value, err, sizeof(err));
    if (r == -2) {
        fprintf(stderr, "smtpfault: %s: %s\n", name, err);
        return CLI_EXIT_USAGE;
    }
    if (r != 0)
        return cli_usage_error("%s: %s", name, err);
    return row->kind == KIND_ACTION ? row->result : OPTIONS_RUN;
}

void config_defaults(config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char err[OPTION_ERR_MAX];
    for (size_t i = 0; i < NROWS; i++) {
        if (rows[i].kind == KIND_FLAG)
            store_unsigned((char *)cfg + rows[i].offset, rows[i].size, !rows[i].min);
        else if (rows[i].deflt != NULL)
            (void)set_value(cfg, &rows[i], rows[i].deflt, err, sizeof(err));
    }
    cfg->admin_given = cfg->users_given = 0; /* the first --admin or --user replaces the default */
}

const char *options_default(const char *name)
{
    for (size_t i = 0; i < NROWS; i++)
        if (strcmp(rows[i].name, name) == 0)
            return rows[i].deflt;
    return NULL;
}

/* env_name - SMTPFAULT_ and the option's name in capitals, dashes as underscores */
static void env_name(const char *option, char *out, size_t outsz)
{
    size_t o = (size_t)snprintf(out, outsz, "SMTPFAULT_");
    for (const char *p = option; *p && o + 1 < outsz; p++)
        out[o++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[o] = '\0';
}

/* env_flag - a flag given in the environment: 1 (on), 0 (off), -1 (not a boolean) */
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

/* apply_list - a repeatable option's values from the environment, separated by spaces */
static int apply_list(config *cfg, const option_row *row, const char *name, const char *value)
{
    char *copy = strdup(value), *save = NULL;
    int rc = copy ? OPTIONS_RUN : EXIT_FAILURE;
    for (char *t = copy ? strtok_r(copy, " \t\n", &save) : NULL; t != NULL && rc == OPTIONS_RUN;
         t = strtok_r(NULL, " \t\n", &save))
        rc = apply(cfg, row, name, t);
    free(copy); /* the values were copied by the row's set (config_add_user, config_add_admin) */
    return rc;
}

/* apply_environment - SMTPFAULT_<NAME> for every option but the actions; unset and empty are the same */
static int apply_environment(config *cfg)
{
    for (size_t i = 0; i < NROWS; i++) {
        const option_row *row = &rows[i];
        if (row->kind == KIND_ACTION)
            continue;
        char name[OPTION_NAME_MAX];
        env_name(row->name, name, sizeof(name));
        const char *value = getenv(name);
        /* Compose files pass ${VAR:-} through for options left out. */
        if (value == NULL || value[0] == '\0')
            continue;
        int rc = OPTIONS_RUN;
        if (row->kind == KIND_FLAG) {
            int on = env_flag(value);
            if (on < 0)
                return cli_usage_error("%s: '%s' is not true or false", name, value);
            if (on)
                rc = apply(cfg, row, name, value);
        } else if (row->kind == KIND_LIST) {
            rc = apply_list(cfg, row, name, value);
        } else {
            rc = apply(cfg, row, name, value);
        }
        if (rc != OPTIONS_RUN)
            return rc;
    }
    return OPTIONS_RUN;
}

/* check_combinations - what no single option can check; refused before any listener opens */
static int check_combinations(const config *cfg)
{
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL))
        return cli_usage_error("--cert and --key go together");
    if (cfg->no_tls && (cfg->cert_file || cfg->certs_dir))
        return cli_usage_error("--no-tls cannot be combined with --cert or --certs-dir");
    /* Here rather than after the SMTP ports are already bound. */
    for (size_t i = 0; i < cfg->nadmin && !cfg->admin_remote; i++)
        if (!cfg->admin[i].unix_path[0] && !config_host_is_loopback(cfg->admin[i].tcp.host))
            return cli_usage_error("--admin %s is not a loopback address: add --admin-remote to allow it "
                                   "(and set --admin-token)",
                                   cfg->admin[i].tcp.host);
    return OPTIONS_RUN;
}

/* row_of - the row getopt_long returned val for, or NULL */
static const option_row *row_of(int val)
{
    if (val >= OPTION_VAL_BASE && (size_t)(val - OPTION_VAL_BASE) < NROWS)
        return &rows[val - OPTION_VAL_BASE];
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].short_name != 0 && rows[i].short_name == val)
            return &rows[i];
    return NULL;
}

int options_parse(int argc, char **argv, config *cfg)
{
    struct option longs[NROWS + 1];
    char shorts[NROWS + 2] = ":"; /* ':' first: a missing value is told from an unknown option */
    size_t ns = 1;
    for (size_t i = 0; i < NROWS; i++) {
        int val = rows[i].short_name ? rows[i].short_name : OPTION_VAL_BASE + (int)i;
        longs[i] = (struct option){rows[i].name, rows[i].arg ? required_argument : no_argument, NULL, val};
        if (rows[i].short_name)
            shorts[ns++] = rows[i].short_name;
    }
    longs[NROWS] = (struct option){NULL, 0, NULL, 0};
    shorts[ns] = '\0';

    int rc = apply_environment(cfg);
    if (rc != OPTIONS_RUN)
        return rc;
    cfg->admin_given = cfg->users_given = 0; /* the first --admin or --user replaces the environment's */
    const char *inexact = cli_inexact_option(argc, argv, longs, 0);
    if (inexact != NULL)
        return cli_usage_error("unknown option '%.*s'", (int)strcspn(inexact, "="), inexact);
    opterr = 0;
    int opt, idx;
    while ((opt = getopt_long(argc, argv, shorts, longs, &idx)) != -1) {
        const option_row *row = row_of(opt);
        if (opt == ':')
            return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        if (row == NULL)
            return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        char name[OPTION_NAME_MAX];
        snprintf(name, sizeof(name), "--%s", row->name);
        if ((rc = apply(cfg, row, name, optarg)) != OPTIONS_RUN)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s' (the subcommands come first: smtpfault help)",
                               argv[optind]);
    return check_combinations(cfg);
}

void options_usage(FILE *out)
{
    const char *section = NULL;
    for (size_t i = 0; i < NROWS; i++) {
        const option_row *row = &rows[i];
        if (row->section != section) {
            fprintf(out, "%s%s:\n", section ? "\n" : "", row->section);
            section = row->section;
        }
        char left[OPTION_NAME_MAX], shortform[8] = "";
        if (row->short_name)
            snprintf(shortform, sizeof(shortform), "-%c, ", row->short_name);
        snprintf(left, sizeof(left), "%s--%s%s%s", shortform, row->name, row->arg ? " " : "",
                 row->arg ? row->arg : "");
        fprintf(out, "  %-*s ", USAGE_COLUMN, left);
        for (const char *h = row->help; *h != '\0';) {
            size_t n = strcspn(h, "\n");
            fprintf(out, "%.*s", (int)n, h);
            h += n;
            if (*h == '\n') {
                fprintf(out, "\n  %-*s ", USAGE_COLUMN, "");
                h++;
            }
        }
        if (row->deflt != NULL && !row->default_in_help)
            fprintf(out, " (default %s)", row->deflt);
        fputc('\n', out);
    }
    fprintf(out, "\n%s", environment_text);
}
