/*
 * mime.h - just enough MIME to show a captured message: header fields, and its leaf parts decoded (base64,
 * quoted-printable) with their types, file names and content ids. Pure: no I/O, bounded in depth and parts.
 * Used by Mailpit's message API (mailpit.c), which the web page reads too.
 */
#ifndef SMTPFAULT_MIME_H
#define SMTPFAULT_MIME_H

#include <stddef.h>

#define MIME_DEPTH_MAX 8   /* nested multiparts; deeper ones are one opaque part */
#define MIME_PARTS_MAX 100 /* leaf parts kept; later ones are not shown */

typedef struct mime_part {
    char type[128];     /* "text/plain", lower case, without parameters */
    char filename[256]; /* "" when none */
    char content_id[256];
    int attachment; /* Content-Disposition: attachment */
    char *data;     /* decoded (malloc'd) */
    size_t len;
} mime_part;

typedef struct mime_message {
    mime_part parts[MIME_PARTS_MAX];
    size_t nparts;
} mime_message;

/* mime_body - where the body starts: after the empty line that ends the header section (len when none) */
size_t mime_body(const char *msg, size_t len);

/*
 * mime_header - the first field called name (any case) of the header section of msg, unfolded, without
 * leading blanks, cut to outsz - 1 bytes; 0, or -1 when there is none (out is "")
 */
int mime_header(const char *msg, size_t len, const char *name, char *out, size_t outsz);

/* mime_hex_value - a hex digit's value (either case), or -1 (quoted-printable's =XX, a URL's %XX) */
int mime_hex_value(char ch);

/* mime_parse - the leaf parts of msg into m (mime_free it); 0, or -1 when out of memory */
int mime_parse(const char *msg, size_t len, mime_message *m);
void mime_free(mime_message *m);

#endif
