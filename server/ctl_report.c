/*
 * ctl_report.c - how `smtpfault ctl report` prints client.report for people: the verdict, the findings,
 * then each thing the client tried to deliver with its tries and the waits between them.
 */
#include "ctl.h"

#include <stdio.h>

#include "jsonutil.h"

static const char *yes_no(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNull(v) ? "-" : cJSON_IsTrue(v) ? "yes" : "no";
}

static void print_thread(const cJSON *th)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(th, "connection")))
        printf("  connections: %s", json_str(th, "outcome"));
    else
        printf("  <%s> -> <%s>: %s", json_str(th, "sender"), json_str(th, "rcpt"), json_str(th, "outcome"));
    printf(", %.0f retr%s, backoff %s, hammering %s\n", json_num(th, "retries"),
           json_num(th, "retries") == 1 ? "y" : "ies", yes_no(th, "backoff"), yes_no(th, "hammering"));
    const cJSON *tries = cJSON_GetObjectItemCaseSensitive(th, "tries");
    for (const cJSON *t = tries ? tries->child : NULL; t != NULL; t = t->next) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "delay_ms");
        char after[40] = "";
        if (cJSON_IsNumber(d))
            snprintf(after, sizeof(after), "+%.0f ms", d->valuedouble);
        printf("    %s %-10s #%-5.0f %-8s %s\n", json_str(t, "time"), after, json_num(t, "session"),
               json_str(t, "stage"), json_str(t, "reply"));
    }
}

void ctl_print_report(const cJSON *resp)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(resp, "report");
    if (r == NULL) { /* no client given: the clients with a story */
        const cJSON *clients = cJSON_GetObjectItemCaseSensitive(resp, "clients");
        for (const cJSON *c = clients ? clients->child : NULL; c != NULL; c = c->next)
            printf("%s\n", cJSON_IsString(c) ? c->valuestring : "");
        return;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "summary");
    printf("client %s: %.0f session%s, %.0f violation%s\n", json_str(r, "client"), json_num(r, "sessions"),
           json_num(r, "sessions") == 1 ? "" : "s", json_num(s, "violations"),
           json_num(s, "violations") == 1 ? "" : "s");
    printf("retried a 4xx: %s, backoff: %s, hammering: %s, retried a 5xx: %s, gave up after a 5xx: %s\n",
           yes_no(s, "retried_4xx"), yes_no(s, "backoff"), yes_no(s, "hammering"), yes_no(s, "retried_5xx"),
           yes_no(s, "gave_up_after_5xx"));
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "findings");
    for (const cJSON *x = f ? f->child : NULL; x != NULL; x = x->next)
        printf("%-9s %s x%.0f (#%.0f: %s) %s\n", json_str(x, "severity"), json_str(x, "id"),
               json_num(x, "count"), json_num(x, "session"), json_str(x, "line"), json_str(x, "reference"));
    const cJSON *threads = cJSON_GetObjectItemCaseSensitive(r, "threads");
    for (const cJSON *th = threads ? threads->child : NULL; th != NULL; th = th->next)
        print_thread(th);
}
