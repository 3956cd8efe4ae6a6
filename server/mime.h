/*
 * mime.h - just enough MIME to show a captured message: header fields, and its leaf parts decoded (base64,
 * quoted-printable) with their types, file names and content ids. Pure: no I/O, bounded in depth and parts.
 * Used by Mailpit's message API (mailpit.c), which the web page reads too.
 */
#ifndef SMTPFAULT_MIME_H
#define SMTPFAULT_MIME_H

#include <stddef.h>

#define MIME_DEPTH_MAX   8   /* nested multiparts; deeper ones are one opaque part */
#define MIME_PARTS_MAX   100 /* leaf parts kept; later ones are not shown */
#define MIME_UTF8_GROWTH 3   /* a part converted to UTF-8 keeps at most this many times its decoded size */

typedef struct mime_part {
    char type[128];     /* "text/plain", lower case, without parameters */
    char filename[256]; /* "" when none */
    char content_id[256];
    char charset[64]; /* its Content-Type's charset parameter, "" when none */
    int attachment;   /* Content-Disposition: attachment */
    char *data;       /* decoded (malloc'd) */
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

/*
 * mime_decode_words - value (an unfolded header field) with its RFC 2047 encoded words (=?charset?B?...?=,
 * =?charset?Q?...?=) decoded to UTF-8 into out, cut to outsz - 1 bytes (never inside a sequence). Blanks
 * between two adjacent encoded words are dropped (RFC 2047 6.2); a malformed word, or one in a charset iconv
 * does not know, is kept as it is; bytes its charset does not map, and NUL characters, become U+FFFD (a NUL
 * would cut the C string shown). Linear in the input.
 * Returns the length written.
 */
size_t mime_decode_words(const char *value, char *out, size_t outsz);

/*
 * mime_date - a Date field's value (RFC 5322 3.3: an optional day of the week, day month year, hh:mm[:ss],
 * a numeric zone or an obsolete name such as GMT or EST, an optional comment) as RFC 3339 in the field's own
 * offset: "2026-12-06T15:04:05+01:00", "Z" for +0000. 0, or -1 when value is not such a date (out is "").
 */
int mime_date(const char *value, char *out, size_t outsz);

/*
 * mime_part_to_utf8 - p's data converted from its charset to UTF-8 (bytes it does not map, and NUL
 * characters, become U+FFFD), cut at MIME_UTF8_GROWTH times its size; when the charset is none, UTF-8,
 * US-ASCII or one iconv does not know, left as it is but for NUL bytes (U+FFFD, and then bytes that are not
 * UTF-8 too). 0, or -1 when out of memory (the data is then unchanged).
 */
int mime_part_to_utf8(mime_part *p);

/* mime_parse - the leaf parts of msg into m (mime_free it); 0, or -1 when out of memory */
int mime_parse(const char *msg, size_t len, mime_message *m);
void mime_free(mime_message *m);

#endif
