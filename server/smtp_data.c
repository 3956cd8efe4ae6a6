/*
 * smtp_data.c - DATA body decoder: dot-unstuffing and end-of-data detection (RFC 5321 section 4.5.2).
 *
 * The decoder forwards runs of input bytes to the sink unchanged and withholds only what it cannot decide
 * yet: a dot at the start of a line, or a CR that may start the line terminator.
 */
#include "smtp_data.h"

#include <string.h>

enum {
    DATA_BOL,    /* at the start of a line */
    DATA_DOT,    /* a '.' at the start of a line, withheld */
    DATA_DOT_CR, /* ".\r" at the start of a line, withheld */
    DATA_TEXT,   /* inside a line */
    DATA_CR,     /* a '\r' inside a line ended the previous input, withheld */
};

void smtp_data_init(smtp_data_decoder *d)
{
    d->state = DATA_BOL;
    d->line_len = 0;
    d->longest_line = 0;
}

static void end_line(smtp_data_decoder *d)
{
    size_t len = d->line_len + 2; /* CRLF */
    if (len > d->longest_line)
        d->longest_line = len;
    d->line_len = 0;
}

size_t smtp_data_decode(smtp_data_decoder *d, const char *in, size_t n, smtp_data_sink sink, void *ctx,
                        int *done)
{
    size_t i = 0, run = 0; /* in[run..i) is decoded content not yet given to the sink */
    *done = 0;
#define FLUSH_RUN()                       \
    do {                                  \
        if (i > run)                      \
            sink(ctx, in + run, i - run); \
    } while (0)

    while (i < n) {
        switch (d->state) {
        case DATA_BOL:
            if (in[i] == '.') {
                FLUSH_RUN();
                i++;
                run = i;
                d->line_len = 1;
                d->state = DATA_DOT;
            } else {
                d->state = DATA_TEXT;
            }
            break;
        case DATA_DOT:
            if (in[i] == '\r') {
                i++;
                run = i;
                d->state = DATA_DOT_CR;
            } else {
                d->state = DATA_TEXT; /* the stuffed dot is dropped; the byte is ordinary text */
            }
            break;
        case DATA_DOT_CR:
            if (in[i] == '\n') {
                i++;
                d->state = DATA_BOL;
                *done = 1;
                return i;
            }
            /* ".\r" then something else: the dot was stuffing, the CR is content. */
            sink(ctx, "\r", 1);
            d->line_len++;
            d->state = DATA_TEXT;
            break;
        case DATA_TEXT: {
            const char *cr = memchr(in + i, '\r', n - i);
            if (cr == NULL) {
                d->line_len += n - i;
                i = n;
                break;
            }
            size_t at = (size_t)(cr - in);
            d->line_len += at - i;
            if (at + 1 < n) {
                i = at + 1;
                if (in[i] == '\n') {
                    i++;
                    end_line(d);
                    d->state = DATA_BOL;
                } else {
                    d->line_len++; /* a bare CR is content */
                }
            } else {
                i = at;
                FLUSH_RUN();
                i = n;
                run = n;
                d->state = DATA_CR;
            }
            break;
        }
        case DATA_CR:
            if (in[i] == '\n') {
                sink(ctx, "\r\n", 2);
                i++;
                run = i;
                end_line(d);
                d->state = DATA_BOL;
            } else {
                sink(ctx, "\r", 1);
                d->line_len++;
                d->state = DATA_TEXT;
            }
            break;
        }
    }
    FLUSH_RUN();
#undef FLUSH_RUN
    return i;
}
