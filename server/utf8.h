/*
 * utf8.h - UTF-8 well-formedness check (RFC 3629).
 *
 * SMTPUTF8 (RFC 6531) allows UTF-8 in addresses; the server must still refuse byte sequences that are not
 * UTF-8 at all (overlongs, surrogates, truncated sequences). libc has no such check for a byte buffer in an
 * arbitrary locale, hence these few lines.
 */
#ifndef SMTPFAULT_UTF8_H
#define SMTPFAULT_UTF8_H

#include <stddef.h>

/* utf8_sequence_len - length of the well-formed sequence starting at s (at most n bytes), 0 if malformed */
size_t utf8_sequence_len(const unsigned char *s, size_t n);

/* utf8_valid - 1 if all n bytes are well-formed UTF-8 */
int utf8_valid(const char *s, size_t n);

#endif
