/*
 * sf_assert.h - invariants, checked in the ASan and fuzz builds (SMTPFAULT_ASSERTS), free elsewhere.
 *
 * For what "cannot happen" in the code's own logic (a state the machine never enters, a length past its
 * buffer), never for input: bad input gets a reply. A failed check aborts with the place and the condition,
 * so a fuzzer reports a logic error as it reports a memory error.
 */
#ifndef SMTPFAULT_SF_ASSERT_H
#define SMTPFAULT_SF_ASSERT_H

#if defined(SMTPFAULT_ASSERTS) && SMTPFAULT_ASSERTS
#include <stdio.h>
#include <stdlib.h>
#define SF_ASSERT(cond)                                                                                \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            fprintf(stderr, "%s:%d: %s: invariant failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
            abort();                                                                                   \
        }                                                                                              \
    } while (0)
/* SF_UNREACHABLE - a place the code's logic never reaches (why: a string literal) */
#define SF_UNREACHABLE(why)                                                                 \
    do {                                                                                    \
        fprintf(stderr, "%s:%d: %s: unreachable: %s\n", __FILE__, __LINE__, __func__, why); \
        abort();                                                                            \
    } while (0)
#else
#define SF_ASSERT(cond)     ((void)sizeof(!(cond))) /* compiled, so it cannot rot, but never evaluated */
#define SF_UNREACHABLE(why) ((void)(why))
#endif

#endif
