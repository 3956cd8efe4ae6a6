/*
 * fault_summary.c - what a compiled profile touches, in words an admin answer can list: the stages and
 * listeners its rules and limits act at, and the server settings it changes. `ctl load` says it, so that a
 * profile of settings only ("0 rules") does not read as if nothing was loaded.
 */
#include <string.h>

#include "fault_internal.h"
#include "fault_names.h"

/* listener_bit - the bit of a listener name in FAULT_LISTENER_LIST order, 0 for an unknown one */
static unsigned listener_bit(const char *name)
{
    int i = fault_names_find(&fault_listener_names, name);
    return i < 0 ? 0 : 1u << i;
}

/* add_setting - name into the summary's settings, when there is room */
static void add_setting(fault_summary *s, int changed, const char *name)
{
    if (changed && s->nsettings < FAULT_SUMMARY_SETTINGS_MAX)
        s->settings[s->nsettings++] = name;
}

/* add_limit - a limit's name, and the stage it is checked at, when it is set */
static void add_limit(fault_summary *s, const fault_limit *l, fault_stage at, const char *name)
{
    if (l->max == 0)
        return;
    add_setting(s, 1, name);
    s->stages |= 1u << at;
    s->listeners = FAULT_SUMMARY_ALL_LISTENERS;
}

void fault_profile_summarize(const fault_profile *p, fault_summary *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < p->nrules; i++) {
        const fault_rule *r = &p->rules[i];
        s->stages |= r->stages;
        if (r->nlisteners == 0)
            s->listeners = FAULT_SUMMARY_ALL_LISTENERS;
        for (size_t j = 0; j < r->nlisteners; j++)
            s->listeners |= listener_bit(r->listeners[j]);
    }
    add_limit(s, &p->conns_per_client, FAULT_STAGE_CONNECT, "limits.connections_per_client");
    add_limit(s, &p->msgs_per_conn, p->msgs_per_conn.at, "limits.messages_per_connection");
    add_limit(s, &p->msgs_per_minute, p->msgs_per_minute.at, "limits.messages_per_minute");
    const fault_settings *f = &p->settings;
    add_setting(s, f->hostname != NULL, "server.hostname");
    add_setting(s, f->greeting != NULL, "server.greeting");
    add_setting(s, f->banner != NULL, "server.banner");
    add_setting(s, f->ehlo_text != NULL, "server.ehlo_text");
    add_setting(s, f->size != 0, "server.size");
    add_setting(s, f->max_recipients != 0, "server.max_recipients");
    add_setting(s, f->has_users, "server.users");
    add_setting(s, f->auth_mechs != 0, "server.auth_mechanisms");
    add_setting(s, f->ehlo_remove != 0, "ehlo.remove");
    add_setting(s, f->certificate >= 0, "tls.certificate");
    add_setting(s, f->tls_min >= 0 || f->tls_max >= 0, "tls.versions");
    add_setting(s, f->magic >= 0, "magic");
}
