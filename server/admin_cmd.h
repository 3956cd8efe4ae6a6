/*
 * admin_cmd.h - the admin socket's commands: one handler per command, from one table.
 */
#ifndef SMTPFAULT_ADMIN_CMD_H
#define SMTPFAULT_ADMIN_CMD_H

#include <cJSON.h>

#include "admin.h"

/*
 * X(name, handler suffix, "arguments", "summary") - the commands, as docs/admin.md lists them. The
 * arguments column is the contract: the dispatcher refuses any other key (besides cmd, id and token) with
 * bad_argument before the handler runs.
 */
#define ADMIN_COMMAND_LIST(X)                                                                          \
    X("ping", ping, "", "answers pong")                                                                \
    X("version", version, "", "smtpfault and library versions")                                        \
    X("stats", stats, "scope", "sessions, messages, bytes, faults fired, uptime")                      \
    X("profile.load", profile_load, "profile, path, name, source, scope",                              \
      "put a profile in force (all or nothing)")                                                       \
    X("profile.validate", profile_validate, "profile, path, name, source, scope",                      \
      "check a profile without loading it")                                                            \
    X("profile.get", profile_get, "scope", "the profile in force")                                     \
    X("profile.clear", profile_clear, "scope", "back to the default profile (no rules)")               \
    X("messages.list", messages_list, "to, from, subject, since, limit, scope",                        \
      "captured messages, oldest first")                                                               \
    X("messages.get", messages_get, "message, raw, scope", "one message: envelope, headers, body")     \
    X("messages.delete", messages_delete, "message, scope", "forget one message")                      \
    X("messages.clear", messages_clear, "scope", "forget every message")                               \
    X("messages.wait", messages_wait, "to, from, subject, since, timeout, scope",                      \
      "wait for a matching message")                                                                   \
    X("sessions.list", sessions_list, "scope", "live and recent sessions")                             \
    X("sessions.get", sessions_get, "session, scope", "one session with its transcript")               \
    X("events.subscribe", events_subscribe, "scope", "stream every event until the connection closes") \
    X("tls.ca", tls_ca, "scope", "the CA certificate clients should trust (PEM)")                      \
    X("reset", reset, "scope", "profile, counters, messages and rate limits back to the start")        \
    X("scope.create", scope_create, "profile, path, name, source, listeners, keep",                    \
      "a new scope on new ports: its own profile, messages, sessions and counters")                    \
    X("scope.list", scope_list, "", "the scopes alive")                                                \
    X("scope.delete", scope_delete, "scope", "end a scope: its listeners, sessions and messages")      \
    X("client.report", client_report, "client, scope", "a client's findings and retry story")

/*
 * admin_command - run request req (already checked to be an object with a string "cmd") for client c.
 * Returns the response object (without "id"), or NULL when the response was deferred or will stream.
 */
cJSON *admin_command(admin_client *c, const cJSON *req, cJSON *id);

/* cmd_client_report - client.report (admin_report.c) */
cJSON *cmd_client_report(admin_client *c, scope *sc, const cJSON *req, cJSON *id);

/* admin_error - {"ok": false, "error": {"code": code, "message": message}} */
cJSON *admin_error(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* admin_listed - key is one of the names in list ("a, b, c", the arguments column of ADMIN_COMMAND_LIST) */
int admin_listed(const char *list, const char *key);

/* admin_request_scope - the scope req's "scope" names (the server's own without one), or NULL with *err set
 */
scope *admin_request_scope(admin_client *c, const cJSON *req, cJSON **err);

/* admin_find_message - the message req's "message" names, or NULL with *err set (not_found, bad_argument) */
store_msg *admin_find_message(admin_client *c, const cJSON *req, cJSON **err);

/* admin_message_summary - a captured message's envelope, as messages.list shows it */
cJSON *admin_message_summary(const store_msg *m);

#endif
