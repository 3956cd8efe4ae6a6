/*
 * fault_gate.c - the one reading of a fault decision: decide, describe, log, and the 421-closes rule.
 */
#include "fault_gate.h"

#include <stdio.h>

#include "log.h"

#define FAULT_GATE_WHAT_MAX 300 /* the action's description in the transcript */
#define FAULT_GATE_LINE_MAX 400 /* the whole "fault" event line */

const fault_action *fault_gate_decide(fault_conn *fc, fault_stage stage, const fault_facts *f, int64_t now_ms,
                                      fault_decision *d, fault_gate_event event, void *ctx)
{
    fault_decide(fc, stage, f, now_ms, d);
    if (d->act == NULL)
        return NULL;
    char what[FAULT_GATE_WHAT_MAX], line[FAULT_GATE_LINE_MAX];
    fault_decision_describe(d, what, sizeof(what));
    /* The greylist period is said even when the reply is the rule's own: the retry story times it. */
    int n = d->act->greylist_ms > 0
                ? snprintf(line, sizeof(line), "%s at %s: %s (greylist for %u ms)", d->why,
                           fault_stage_name(stage), what, d->act->greylist_ms)
                : snprintf(line, sizeof(line), "%s at %s: %s", d->why, fault_stage_name(stage), what);
    if (n > 0)
        event(ctx, LOG_INFO, "fault", line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    return d->act;
}

fault_close fault_gate_close_after(const fault_action *a)
{
    /* RFC 5321 3.8: a 421 is the server closing the transmission channel, whatever the rule says. */
    if (a->reply != NULL && a->reply_code == 421)
        return a->close == FAULT_CLOSE_RST ? FAULT_CLOSE_RST : FAULT_CLOSE_FIN;
    return a->close;
}
