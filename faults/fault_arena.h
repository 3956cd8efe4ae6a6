/*
 * fault_arena.h - the allocator of a compiled profile: blocks freed all at once with the profile.
 * Not for use outside faults/.
 */
#ifndef SMTPFAULT_FAULT_ARENA_H
#define SMTPFAULT_FAULT_ARENA_H

#include <stddef.h>

typedef struct fault_arena fault_arena;

/* fault_arena_alloc - size zeroed bytes, aligned for any type, from *a (a new block when it is full); NULL */
void *fault_arena_alloc(fault_arena **a, size_t size);

/* fault_arena_strndup - s[0..n) and a NUL in *a, or NULL */
char *fault_arena_strndup(fault_arena **a, const char *s, size_t n);

/* fault_arena_free - every block of a (NULL is fine) */
void fault_arena_free(fault_arena *a);

#endif
