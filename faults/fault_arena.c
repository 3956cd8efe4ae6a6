/*
 * fault_arena.c - the arena a compiled profile lives in: a chain of blocks, each allocation zeroed and
 * aligned for any type, all freed together when the profile's last reference goes.
 */
#include "fault_arena.h"

#include <stdlib.h>
#include <string.h>

#include "sf_assert.h"

#define ARENA_BLOCK 16384 /* bytes of a block; a larger allocation gets a block of its own */

struct fault_arena {
    struct fault_arena *next;
    size_t used, cap;
    max_align_t data[];
};

void *fault_arena_alloc(fault_arena **a, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (*a == NULL || (*a)->cap - (*a)->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        fault_arena *b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->next = *a;
        b->used = 0;
        b->cap = cap;
        *a = b;
    }
    SF_ASSERT((*a)->used + size <= (*a)->cap);
    void *p = (char *)(*a)->data + (*a)->used;
    (*a)->used += size;
    memset(p, 0, size);
    return p;
}

char *fault_arena_strndup(fault_arena **a, const char *s, size_t n)
{
    char *c = fault_arena_alloc(a, n + 1);
    if (c != NULL) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

void fault_arena_free(fault_arena *a)
{
    while (a != NULL) {
        fault_arena *next = a->next;
        free(a);
        a = next;
    }
}
