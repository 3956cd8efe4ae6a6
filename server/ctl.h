/*
 * ctl.h - `smtpfault ctl`, the admin socket's command-line client.
 */
#ifndef SMTPFAULT_CTL_H
#define SMTPFAULT_CTL_H

#include <cJSON.h>

/* ctl_main - run `smtpfault ctl` with argv[0] == "ctl"; returns the exit code */
int ctl_main(int argc, char **argv);

/* ctl_print_report - client.report's response for people (ctl_report.c) */
void ctl_print_report(const cJSON *resp);

#endif
