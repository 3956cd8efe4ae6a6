/*
 * ctl.h - `smtpfault ctl`, the admin socket's command-line client.
 */
#ifndef SMTPFAULT_CTL_H
#define SMTPFAULT_CTL_H

/* ctl_main - run `smtpfault ctl` with argv[0] == "ctl"; returns the exit code */
int ctl_main(int argc, char **argv);

#endif
