/*
 * cli.h - what every command line of smtpfault shares: long options matched exactly, usage errors.
 */
#ifndef SMTPFAULT_CLI_H
#define SMTPFAULT_CLI_H

#include <getopt.h>
#include <stddef.h>

/*
 * cli_inexact_option - getopt_long takes any unambiguous prefix of a long option ("--port" for
 * "--ports-file", "--host" for "--hostname"), so a mistyped option would silently become another one.
 * Before getopt_long runs, this checks every "--name" and "--name=value" in argv[1..argc) against opts
 * exactly, skipping the values of options that take one. With stop_at_operand, the scan ends at the first
 * argument that is not an option (getopt's "+" mode: a subcommand's own options follow it). NULL when all
 * are exact, else the first argument that names no option, as given.
 */
const char *cli_inexact_option(int argc, char **argv, const struct option *opts, int stop_at_operand);

#define CLI_EXIT_USAGE 2 /* the exit status of a command line that cannot be run */

/* cli_usage_error - "smtpfault: " and the message, then a pointer to --help, on stderr; CLI_EXIT_USAGE */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
