/*
 * smtp_data.h - restartable decoder for the DATA body (RFC 5321 sections 4.1.1.4 and 4.5.2).
 *
 * Removes dot-stuffing, finds the CRLF "." CRLF terminator and measures line lengths, over input split
 * at any byte. Only CRLF ends a line here: a bare LF or CR is message content, so "<LF>.<LF>" can never
 * end a message early (the SMTP smuggling ambiguity).
 */
#ifndef SMTPFAULT_SMTP_DATA_H
#define SMTPFAULT_SMTP_DATA_H

#include <stddef.h>

/* smtp_data_sink - receives decoded body bytes, in order */
typedef void (*smtp_data_sink)(void *ctx, const char *data, size_t len);

typedef struct smtp_data_decoder {
    int state;
    size_t line_len;     /* octets of the current line so far, a stuffed dot included */
    size_t longest_line; /* longest line seen, CRLF included */
} smtp_data_decoder;

void smtp_data_init(smtp_data_decoder *d);

/*
 * smtp_data_decode - decode up to n bytes, feeding content to sink. Returns how many bytes were taken;
 * *done is set when the terminator was reached, and bytes after it are left to the caller.
 */
size_t smtp_data_decode(smtp_data_decoder *d, const char *in, size_t n, smtp_data_sink sink, void *ctx,
                        int *done);

#endif
