/*
 * fuzz_profile.c - arbitrary text through the profile compiler; what compiles is then asked at every stage.
 *
 * The compiler must reject bad input with messages and no leak; a profile it accepts must be one the
 * engine can evaluate at any stage with any facts (first bytes of the input pick them).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fault_errors errs = {NULL, 0};
    fault_profile *p = fault_profile_compile((const char *)data, size, "fuzz", &errs);
    fault_errors_free(&errs);
    if (p == NULL)
        return 0;
    fault_run *run = fault_run_new(p, 0, 1);
    fault_profile_unref(p); /* the run holds it now */
    if (run == NULL)
        return 0;
    static const char *const names[] = {"smtp", "submission", "smtps"};
    static const char *const addrs[] = {"a@x.test", "rcpt550@y.test", "grey@z.test", "",
                                        "dataend452_4.5.3@q.test"};
    for (int c = 0; c < 3; c++) {
        fault_addr addr = {c == 2 ? 6 : 4, {127, 0, 0, (unsigned char)(1 + c)}};
        fault_conn *fc = fault_conn_new(run, names[c], &addr);
        if (fc == NULL)
            continue;
        int64_t next;
        (void)fault_run_listener_mode(run, names[c], c * 1000, &next);
        for (int stage = 0; stage < FAULT_STAGE_COUNT; stage++) {
            fault_facts f;
            memset(&f, 0, sizeof(f));
            f.helo = "client.test";
            f.sender = addrs[(stage + c) % 5];
            f.rcpt = addrs[(stage + c + 1) % 5];
            f.rcpts = addrs;
            f.nrcpts = 5;
            f.user = c ? "u" : NULL;
            f.authenticated = c == 1;
            f.tls = c != 0;
            f.verb = "XFOO";
            fault_decision d;
            fault_decide(fc, (fault_stage)stage, &f, stage * 250 + c * 10000, &d);
            char text[400];
            fault_decision_describe(&d, text, sizeof(text));
            if (stage == FAULT_STAGE_DATA_END)
                fault_conn_message_accepted(fc, stage * 250);
        }
        fault_conn_free(fc);
    }
    fault_run_unref(run);
    return 0;
}
