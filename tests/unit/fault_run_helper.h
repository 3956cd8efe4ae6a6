/*
 * fault_run_helper.h - for the unit tests that drive the fault engine: a profile compiled from JSON and
 * put in force. Include after <cmocka.h>.
 */
#ifndef SMTPFAULT_TEST_FAULT_RUN_HELPER_H
#define SMTPFAULT_TEST_FAULT_RUN_HELPER_H

#include <string.h>

#include "fault.h"

/* test_run - json compiled (the test fails on any error, each printed) and in force from now_ms */
static inline fault_run *test_run(const char *json, int64_t now_ms, int magic)
{
    fault_errors e = {0};
    fault_profile *p = fault_profile_compile(json, strlen(json), "test", &e);
    for (size_t i = 0; i < e.n; i++)
        print_error("%s\n", e.msgs[i]);
    fault_errors_free(&e);
    assert_non_null(p);
    fault_run *r = fault_run_new(p, now_ms, magic);
    assert_non_null(r);
    fault_profile_unref(p); /* the run holds the only reference */
    return r;
}

#endif
