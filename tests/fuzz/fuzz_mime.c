/*
 * fuzz_mime.c - arbitrary bytes as a captured message: its header fields and MIME parts, as Mailpit's API
 * and the web page show them (mime.c): encoded words decoded, text parts converted to UTF-8. Must never read
 * outside the input, write past an output buffer, leak or loop.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mime_message m; /* 100 parts: too large for the stack of every run */
    const char *msg = (const char *)data;
    char value[256];
    char decoded[3 * sizeof(value)];
    (void)mime_header(msg, size, "Subject", value, sizeof(value));
    size_t n = mime_decode_words(value, decoded, sizeof(decoded));
    if (n >= sizeof(decoded) || strlen(decoded) != n || mime_decode_words(value, decoded, 5) >= 5)
        abort(); /* cut to the buffer; a decoded NUL is U+FFFD, not the end of the string */
    /* the whole input as one header value: long runs of encoded words, and what breaks them */
    char *whole = malloc(size + 1), *out = malloc(size * 3 + 1);
    if (whole != NULL && out != NULL) {
        memcpy(whole, data, size);
        whole[size] = '\0';
        if (mime_decode_words(whole, out, size * 3 + 1) > size * 3)
            abort();
    }
    free(whole);
    free(out);
    /* a Date field: read whole, or not at all */
    char date[32];
    (void)mime_header(msg, size, "Date", value, sizeof(value));
    if (mime_date(value, date, sizeof(date)) == 0 ? strlen(date) < 20 : date[0] != '\0')
        abort();
    (void)mime_header(msg, size, "Content-Type", value, 8);
    (void)mime_body(msg, size);
    if (mime_parse(msg, size, &m) == 0) {
        for (size_t i = 0; i < m.nparts; i++) {
            size_t before = m.parts[i].len;
            if (mime_part_to_utf8(&m.parts[i]) != 0)
                continue;
            if (m.parts[i].data == NULL || strlen(m.parts[i].data) != m.parts[i].len ||
                m.parts[i].len > before * MIME_UTF8_GROWTH + 4)
                abort(); /* every part is decoded, converted within its bound, its NULs U+FFFD */
        }
    }
    mime_free(&m);
    return 0;
}
