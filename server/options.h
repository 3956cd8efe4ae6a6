/*
 * options.h - the server's command line and SMTPFAULT_* environment, read through one option table.
 *
 * Each option is one row (name, kind, field of config, range, default, help): the getopt_long table, the
 * usage text, the environment names, the parsing and config_defaults all come from those rows.
 */
#ifndef SMTPFAULT_OPTIONS_H
#define SMTPFAULT_OPTIONS_H

#include <stdio.h>

#include "config.h"

#define OPTIONS_RUN     (-1) /* start the server with the settings read */
#define OPTIONS_HELP    (-2) /* -h, --help was given */
#define OPTIONS_VERSION (-3) /* -V, --version was given */

/*
 * options_parse - fill cfg (at its defaults) from SMTPFAULT_<NAME>, then from argv (the command line
 * wins). OPTIONS_RUN, OPTIONS_HELP or OPTIONS_VERSION, or an exit code once the error is printed.
 */
int options_parse(int argc, char **argv, config *cfg);

/* options_usage - the options by section, each with its default, and how the environment sets them */
void options_usage(FILE *out);

/* options_default - the default of the option named name ("admin": "127.0.0.1:2580"), or NULL */
const char *options_default(const char *name);

#endif
