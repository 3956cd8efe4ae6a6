/*
 * fault_names.h - the vocabularies a profile names things with (stages, listeners, actions, TLS
 * certificates, versions and alerts, SASL mechanisms, EHLO capabilities) as tables, expanded once from
 * their X-macro lists. The profile compiler checks names against them. Not for use outside faults/.
 */
#ifndef SMTPFAULT_FAULT_NAMES_H
#define SMTPFAULT_FAULT_NAMES_H

#include <stddef.h>

/* fault_names - the names a value may take; the value of names[i] is values[i], or i when values is NULL */
typedef struct fault_names {
    const char *const *names;
    const int *values;
    size_t n;
    const char *what; /* in errors: "unknown <what> ..." */
} fault_names;

extern const fault_names fault_stage_names, fault_listener_names, fault_action_names, fault_cert_names,
    fault_version_names, fault_alert_names, fault_mech_names, fault_ehlo_names;

/* fault_names_find - the index of name in t, or -1 */
int fault_names_find(const fault_names *t, const char *name);

#endif
