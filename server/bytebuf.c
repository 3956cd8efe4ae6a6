/*
 * bytebuf.c - a byte buffer that grows by doubling up to a bound, and gives its memory back when empty.
 */
#include "bytebuf.h"

#include <stdlib.h>
#include <string.h>

void bytebuf_init(bytebuf *b, size_t initial, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->initial = initial ? initial : 1;
    b->max = max < b->initial ? b->initial : max;
}

int bytebuf_reserve(bytebuf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return -1;
    size_t need = b->len + n;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : b->initial;
    while (cap < need)
        cap = cap > b->max / 2 ? b->max : cap * 2;
    char *grown = realloc(b->data, cap);
    if (grown == NULL)
        return -1;
    b->data = grown;
    b->cap = cap;
    return 0;
}

int bytebuf_append(bytebuf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (bytebuf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void bytebuf_consume(bytebuf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        /* An idle connection keeps no more than its first allocation: a burst's memory goes back. */
        if (b->cap > b->initial)
            bytebuf_release(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n); /* n < len: data is not NULL */
    b->len -= n;
}

void bytebuf_release(bytebuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *bytebuf_take(bytebuf *b, size_t *len)
{
    char *data = b->len > 0 ? b->data : NULL;
    *len = b->len;
    if (data == NULL)
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    return data;
}
