/*
 * cli.c - what every command line of smtpfault shares: long options matched exactly.
 */
#include "cli.h"

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
