/*
 * fault_names.c - the name tables of the profile vocabulary, expanded from the X-macro lists of
 * fault_stage.h, server_vocab.h, fault_tls.h and fault.h, and the public name <-> value lookups over them.
 */
#include "fault_names.h"

#include <string.h>

#include "fault.h"
#include "server_vocab.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const stage_names[] = {
#define STAGE_NAME(e, s) s,
    FAULT_STAGE_LIST(STAGE_NAME)
#undef STAGE_NAME
};

static const char *const listener_names[] = {
#define LISTENER_NAME(e, s) s,
    FAULT_LISTENER_LIST(LISTENER_NAME)
#undef LISTENER_NAME
};

static const char *const action_names[] = {
#define ACTION_NAME(e, s) s,
    FAULT_ACTION_LIST(ACTION_NAME)
#undef ACTION_NAME
};

static const char *const cert_names[] = {
#define CERT_NAME(e, name, stem, what) name,
    FAULT_CERT_LIST(CERT_NAME)
#undef CERT_NAME
};

static const char *const version_names[] = {
#define VERSION_NAME(e, name) name,
    FAULT_TLS_VERSION_LIST(VERSION_NAME)
#undef VERSION_NAME
};

static const char *const alert_names[] = {
#define ALERT_NAME(name, num) #name,
    FAULT_TLS_ALERT_LIST(ALERT_NAME)
#undef ALERT_NAME
};

static const int alert_numbers[] = {
#define ALERT_NUM(name, num) num,
    FAULT_TLS_ALERT_LIST(ALERT_NUM)
#undef ALERT_NUM
};

static const char *const mech_names[] = {
#define MECH_NAME(e, name, clear) name,
    FAULT_AUTH_MECH_LIST(MECH_NAME)
#undef MECH_NAME
};

static const char *const ehlo_names[] = {
#define EHLO_NAME(e, s) s,
    FAULT_EHLO_CAP_LIST(EHLO_NAME)
#undef EHLO_NAME
};

const fault_names fault_stage_names = {stage_names, NULL, COUNT(stage_names), "stage"};
const fault_names fault_listener_names = {listener_names, NULL, COUNT(listener_names), "listener"};
const fault_names fault_action_names = {action_names, NULL, COUNT(action_names), "action"};
const fault_names fault_cert_names = {cert_names, NULL, COUNT(cert_names), "certificate"};
const fault_names fault_version_names = {version_names, NULL, COUNT(version_names), "TLS version"};
const fault_names fault_alert_names = {alert_names, alert_numbers, COUNT(alert_names), "TLS alert"};
const fault_names fault_mech_names = {mech_names, NULL, COUNT(mech_names), "SASL mechanism"};
const fault_names fault_ehlo_names = {ehlo_names, NULL, COUNT(ehlo_names), "EHLO capability"};

int fault_names_find(const fault_names *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0)
            return (int)i;
    return -1;
}

/* name_of - the name of index i in t, or "?" out of range */
static const char *name_of(const fault_names *t, long i)
{
    return i >= 0 && (size_t)i < t->n ? t->names[i] : "?";
}

const char *fault_action_name(fault_action_kind kind)
{
    return name_of(&fault_action_names, (long)kind);
}

const char *fault_cert_name(int kind)
{
    return name_of(&fault_cert_names, kind);
}

int fault_cert_parse(const char *name)
{
    return fault_names_find(&fault_cert_names, name);
}

const char *fault_tls_version_name(int version)
{
    return name_of(&fault_version_names, version);
}

int fault_tls_version_parse(const char *name)
{
    return fault_names_find(&fault_version_names, name);
}

const char *fault_tls_alert_name(int description)
{
    for (size_t i = 0; i < COUNT(alert_numbers); i++)
        if (alert_numbers[i] == description)
            return alert_names[i];
    return "unknown";
}

int fault_tls_alert_parse(const char *name)
{
    int i = fault_names_find(&fault_alert_names, name);
    return i < 0 ? -1 : alert_numbers[i];
}

const char *fault_ehlo_cap_name(fault_ehlo_cap cap)
{
    return name_of(&fault_ehlo_names, (long)cap);
}
