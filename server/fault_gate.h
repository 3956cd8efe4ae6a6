/*
 * fault_gate.h - the one reading of a fault decision, shared by the session and the connection.
 *
 * Asking the engine at a stage, describing what fired in the transcript ("<why> at <stage>: <what>") and
 * the rule that an injected 421 closes the connection live here, so the session's command gates, the
 * connect stage and the TLS handshake stage read a decision the same way.
 */
#ifndef SMTPFAULT_FAULT_GATE_H
#define SMTPFAULT_FAULT_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "fault.h"

/* The transcript's event sink: a session_host's event() and the connection's own have this shape. */
typedef void (*fault_gate_event)(void *ctx, int level, const char *name, const char *text, size_t len);

/*
 * fault_gate_decide - ask the engine at stage (into d); when a rule fires, log it as a "fault" event
 * through event(ctx) and return its action; NULL when nothing fires.
 */
const fault_action *fault_gate_decide(fault_conn *fc, fault_stage stage, const fault_facts *f, int64_t now_ms,
                                      fault_decision *d, fault_gate_event event, void *ctx);

/* fault_gate_close_after - how the connection ends after the action's reply: an injected 421 always closes */
fault_close fault_gate_close_after(const fault_action *a);

#endif
