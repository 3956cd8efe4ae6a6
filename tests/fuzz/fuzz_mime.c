/*
 * fuzz_mime.c - arbitrary bytes as a captured message: its header fields and MIME parts, as Mailpit's API
 * and the web page show them (mime.c). Must never read outside the input, leak or loop.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mime_message m; /* 100 parts: too large for the stack of every run */
    const char *msg = (const char *)data;
    char value[256];
    (void)mime_header(msg, size, "Subject", value, sizeof(value));
    (void)mime_header(msg, size, "Content-Type", value, 8);
    (void)mime_body(msg, size);
    if (mime_parse(msg, size, &m) == 0) {
        for (size_t i = 0; i < m.nparts; i++)
            if (m.parts[i].data == NULL || m.parts[i].data[m.parts[i].len] != '\0')
                abort(); /* every part is decoded and NUL-terminated */
    }
    mime_free(&m);
    return 0;
}
