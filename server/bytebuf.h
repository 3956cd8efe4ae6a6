/*
 * bytebuf.h - a byte buffer that grows by doubling up to a bound, and gives its memory back when empty.
 *
 * The one buffer type of the server: connection output, TLS ciphertext in and out, admin and ctl input
 * lines, session input. Each user states its first allocation and its bound once, at init; a buffer never
 * grows past its bound (the caller says "line too long" or closes), so every bound stays explicit.
 */
#ifndef SMTPFAULT_BYTEBUF_H
#define SMTPFAULT_BYTEBUF_H

#include <stddef.h>

typedef struct bytebuf {
    char *data;     /* NULL until the first byte */
    size_t len;     /* bytes held */
    size_t cap;     /* bytes allocated */
    size_t initial; /* the first allocation */
    size_t max;     /* cap never grows past this */
} bytebuf;

/* bytebuf_init - an empty buffer that allocates initial bytes first and never more than max */
void bytebuf_init(bytebuf *b, size_t initial, size_t max);

/*
 * bytebuf_reserve - room for n more bytes, doubling the allocation as needed (capped at max). 0, or -1
 * when len + n would pass max or memory is short; the buffer is unchanged then.
 */
int bytebuf_reserve(bytebuf *b, size_t n);

/* bytebuf_append - n bytes at the end; 0, or -1 as bytebuf_reserve (nothing appended then) */
int bytebuf_append(bytebuf *b, const void *p, size_t n);

/* bytebuf_consume - drop the first n bytes (n <= len); an emptied buffer above its first size is freed */
void bytebuf_consume(bytebuf *b, size_t n);

/* bytebuf_take - the bytes held (malloc'd, ownership passes; NULL when empty) in *len; the buffer is empty */
char *bytebuf_take(bytebuf *b, size_t *len);

/* bytebuf_release - free the memory; the buffer is empty and may be used again */
void bytebuf_release(bytebuf *b);

#endif
