/*
 * cli.c - what every command line of smtpfault shares: long options matched exactly, usage errors.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* find_exact - the option named by the len bytes at name, or NULL */
static const struct option *find_exact(const struct option *opts, const char *name, size_t len)
{
    for (const struct option *o = opts; o->name != NULL; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

const char *cli_inexact_option(int argc, char **argv, const struct option *opts, int stop_at_operand)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0)
            return NULL; /* the rest are operands */
        if (arg[0] != '-' || arg[1] == '\0') {
            if (stop_at_operand)
                return NULL;
            continue;
        }
        if (arg[1] != '-')
            continue; /* short options: getopt matches them exactly already */
        size_t len = strcspn(arg + 2, "=");
        const struct option *o = find_exact(opts, arg + 2, len);
        if (o == NULL)
            return arg;
        if (o->has_arg == required_argument && arg[2 + len] != '=')
            i++; /* "--name VALUE": VALUE is not an option, whatever it looks like */
    }
    return NULL;
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "smtpfault: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'smtpfault --help' for more information.\n");
    va_end(ap);
    return CLI_EXIT_USAGE;
}
