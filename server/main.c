/*
 * main.c - command line and process set-up for the smtpfault server.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "options.h"
#include "profiles.h"
#include "server.h"
#include "version.h"

#define MALLOC_MMAP_THRESHOLD (32 * 1024 * 1024) /* glibc's largest: bigger blocks are mmap()ed */
#define MALLOC_TRIM_THRESHOLD (8 * 1024 * 1024)  /* free memory kept at the heap's top (glibc: 128 KiB) */

static const char usage_head[] =
    "Usage: smtpfault [OPTIONS]                 run the server\n"
    "       smtpfault SUBCOMMAND [ARGS]         (smtpfault help SUBCOMMAND for its own help)\n"
    "\n";

static const char usage_intro[] =
    "A fake SMTP server for fault injection: it speaks real ESMTP, keeps every message it accepts, and\n"
    "reproduces the errors mail clients meet in production.\n"
    "\n";

static void print_usage(FILE *out);

/* print_version - the server's version and its libraries' */
static void print_version(void)
{
    printf("smtpfault %s%s%s (libuv %s, wolfSSL %s, cJSON %s)\n", SMTPFAULT_VERSION,
           SMTPFAULT_GIT_COMMIT[0] ? "+" : "", SMTPFAULT_GIT_COMMIT, uv_version_string(),
           LIBWOLFSSL_VERSION_STRING, cJSON_Version());
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

/* check_dir - every *.json in dir, in name order; 0 when all are valid, -1 otherwise or when there is none */
static int check_dir(const char *dir)
{
    char **names;
    size_t n;
    int r = profiles_scan(dir, &names, &n);
    if (r != 0) {
        fprintf(stderr, "%s: cannot read the directory: %s\n", dir, uv_strerror(r));
        return -1;
    }
    int bad = n == 0;
    if (n == 0)
        fprintf(stderr, "%s: no *.json profile in this directory\n", dir);
    for (size_t i = 0; i < n; i++) {
        char path[PROFILES_PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        bad |= check_one(path) != 0;
    }
    profiles_free_names(names, n);
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

/* asks_help - a subcommand's argv is `SUBCOMMAND --help` (or -h) */
static int asks_help(int argc, char **argv)
{
    return argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
}

/* cmd_check - `smtpfault check FILE|NAME|DIR...`: validate each, report every error, exit 1 if any is invalid
 */
static int cmd_check(int argc, char **argv)
{
    if (asks_help(argc, argv)) {
        printf("Usage: smtpfault check FILE|NAME|DIR...\n"
               "Validate fault profiles: files, names of shipped profiles (smtpfault profiles), or every\n"
               "*.json in a directory. Every error is printed with its JSON path; the exit status is 0 when\n"
               "all are valid, 1 otherwise.\n");
        return EXIT_SUCCESS;
    }
    if (argc < 2) {
        fprintf(stderr, "Usage: smtpfault check FILE|NAME|DIR...\n"
                        "Try 'smtpfault help check' for more information.\n");
        return CLI_EXIT_USAGE;
    }
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        char path[PROFILES_PATH_MAX];
        if (is_dir(argv[i])) {
            bad |= check_dir(argv[i]) != 0;
        } else if (profiles_find(argv[i], path, sizeof(path)) != 0) {
            if (strchr(argv[i], '/') != NULL || profiles_is_json(argv[i]))
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
    if (asks_help(argc, argv)) {
        printf("Usage: smtpfault profiles [NAME|FILE]\n"
               "Without an argument, list the shipped profiles (and those in $SMTPFAULT_PROFILES) with the\n"
               "first sentence of each description. With a name, print that profile's JSON, to read it or\n"
               "to start a profile of your own from it.\n");
        return EXIT_SUCCESS;
    }
    if (argc == 1)
        return profiles_list();
    if (argc > 2)
        return cli_usage_error("profiles: one name at a time (smtpfault profiles [NAME])");
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
            return cli_usage_error("certs: unexpected argument '%s'", argv[i]);
    }
    if (dir == NULL)
        return cli_usage_error("certs: which directory? (smtpfault certs DIR)");
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
    fputs(usage_intro, out);
    options_usage(out);
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
        return cli_usage_error(argc == 2 ? "help: no subcommand '%s'" : "help: one subcommand at a time%.0s",
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
        return cli_usage_error("unknown subcommand '%s'", argv[1]);
    /* Message bodies grow past glibc's 128 KiB mmap threshold: each one would be a fresh mapping, faulted in
     * page by page and unmapped (with a TLB flush) when evicted, which doubled the CPU cost of a 100 KiB
     * message (docs/performance.md). On the heap their memory is reused. */
    mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
    /* And what a request frees at the heap's top is kept for the next one, not given back and faulted in
     * again: a Mailpit search parses every kept message in turn, and took twice as long with glibc's
     * 128 KiB trim threshold (100 MiB of 200 KiB messages: 0.55 s, 0.24 s with this). */
    mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
    config cfg;
    config_defaults(&cfg);
    int rc = options_parse(argc, argv, &cfg);
    if (rc == OPTIONS_HELP)
        print_usage(stdout);
    else if (rc == OPTIONS_VERSION)
        print_version();
    if (rc != OPTIONS_RUN) {
        config_free(&cfg);
        return rc == OPTIONS_HELP || rc == OPTIONS_VERSION ? EXIT_SUCCESS : rc;
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
            return CLI_EXIT_USAGE;
        }
        profile = profiles_load(path, &errs);
        if (profile == NULL) {
            fprintf(stderr, "smtpfault: --profile %s is not valid:\n", cfg.profile);
            print_errors(&errs);
            fault_errors_free(&errs);
            config_free(&cfg);
            return CLI_EXIT_USAGE;
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
