/*
 * test_mime.c - header fields and MIME parts as Mailpit's API shows them: folding, parameters, nesting,
 * transfer encodings, and input that breaks the rules (no closing boundary, bad base64, no header section).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mime.h"

static mime_message *parse(const char *msg)
{
    mime_message *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    assert_int_equal(mime_parse(msg, strlen(msg), m), 0);
    return m;
}

static void done(mime_message *m)
{
    mime_free(m);
    free(m);
}

static void test_header_fields(void **state)
{
    (void)state;
    const char *msg =
        "From: A <a@example.org>\r\nSubject: one\r\n\ttwo \r\nsubject: later\r\n\r\nSubject: body\r\n";
    char out[64];
    assert_int_equal(mime_header(msg, strlen(msg), "subject", out, sizeof(out)), 0);
    assert_string_equal(out, "one\ttwo"); /* unfolded, the first one, not the body's */
    assert_int_equal(mime_header(msg, strlen(msg), "To", out, sizeof(out)), -1);
    assert_string_equal(out, "");
    assert_int_equal(mime_header(msg, strlen(msg), "From", out, 4), 0);
    assert_string_equal(out, "A <"); /* cut to the buffer */
    assert_int_equal(mime_body(msg, strlen(msg)), strlen(msg) - strlen("Subject: body\r\n"));
}

static void test_single_part_quoted_printable(void **state)
{
    (void)state;
    mime_message *m = parse("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
                            "quoted-printable\r\n\r\ncaf=C3=A9 soft=\r\nbreak =ZZ\r\n");
    assert_int_equal(m->nparts, 1);
    assert_string_equal(m->parts[0].type, "text/plain");
    assert_string_equal(m->parts[0].data, "caf\xc3\xa9 softbreak =ZZ\r\n");
    done(m);
}

static void test_nested_multipart(void **state)
{
    (void)state;
    mime_message *m =
        parse("Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\n"
              "Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n"
              "Content-Type: text/plain\r\n\r\nplain\r\n--inner\r\nContent-Type: TEXT/HTML; x=1\r\n"
              "\r\n<p>html</p>\r\n--inner--\r\n--outer\r\nContent-Type: application/pdf; "
              "name=\"r.pdf\"\r\nContent-Disposition: attachment\r\nContent-ID: <id1>\r\n"
              "Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n--outer--\r\nepilogue\r\n");
    assert_int_equal(m->nparts, 3);
    assert_string_equal(m->parts[0].data, "plain");
    assert_string_equal(m->parts[1].type, "text/html");
    assert_string_equal(m->parts[1].data, "<p>html</p>");
    assert_string_equal(m->parts[2].type, "application/pdf");
    assert_string_equal(m->parts[2].filename, "r.pdf");
    assert_string_equal(m->parts[2].content_id, "<id1>");
    assert_int_equal(m->parts[2].attachment, 1);
    assert_int_equal(m->parts[2].len, 5);
    assert_memory_equal(m->parts[2].data, "hello", 5);
    done(m);
}

static void test_broken_input_is_shown_as_well_as_it_can_be(void **state)
{
    (void)state;
    /* no closing delimiter (a message cut short): what came after the last delimiter is a part too */
    mime_message *m =
        parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo");
    assert_int_equal(m->nparts, 2);
    assert_string_equal(m->parts[0].data, "one");
    assert_string_equal(m->parts[1].data, "two");
    done(m);
    /* a multipart without a boundary is one part; broken base64 decodes to nothing */
    m = parse("Content-Type: multipart/mixed\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!");
    assert_int_equal(m->nparts, 1);
    assert_int_equal(m->parts[0].len, 0);
    done(m);
    /* no header section, no line end at all */
    m = parse("just text");
    assert_int_equal(m->nparts, 1);
    assert_string_equal(m->parts[0].type, "text/plain");
    assert_string_equal(m->parts[0].data, "");
    done(m);
}

static void test_bounds(void **state)
{
    (void)state;
    /* 20 levels of nesting: read 8 deep, the rest is one opaque part */
    char msg[8192] = "";
    for (int i = 0; i < 20; i++)
        snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
                 "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
    strcat(msg, "\r\nleaf\r\n");
    mime_message *m = parse(msg);
    assert_int_equal(m->nparts, 1);
    assert_string_equal(m->parts[0].type, "multipart/mixed");
    done(m);
    /* 150 parts: the first 100 are kept */
    char *many = malloc(150 * 16 + 128);
    strcpy(many, "Content-Type: multipart/mixed; boundary=x\r\n\r\n");
    for (int i = 0; i < 150; i++)
        strcat(many, "--x\r\n\r\npart\r\n");
    strcat(many, "--x--\r\n");
    m = parse(many);
    assert_int_equal(m->nparts, MIME_PARTS_MAX);
    done(m);
    free(many);
}

static const char *decoded(const char *value)
{
    static char out[512];
    size_t n = mime_decode_words(value, out, sizeof(out));
    assert_int_equal(n, strlen(out));
    return out;
}

static void test_encoded_words(void **state)
{
    (void)state;
    /* B and Q; "_" is a space in Q; either case of the encoding */
    assert_string_equal(decoded("=?UTF-8?B?R3LDvMOfZQ==?="), "Gr\xc3\xbc\xc3\x9f"
                                                             "e");
    assert_string_equal(decoded("=?iso-8859-1?q?K=F6ln_am_Rhein?="), "K\xc3\xb6ln am Rhein");
    assert_string_equal(decoded("Re: =?utf-8?Q?caf=C3=A9?= now"), "Re: caf\xc3\xa9 now");
    /* blanks between adjacent encoded words are dropped, not those next to other text */
    assert_string_equal(decoded("=?UTF-8?Q?a?= \t =?UTF-8?Q?b?=  c =?UTF-8?Q?d?="), "ab  c d");
    assert_string_equal(decoded("=?UTF-8?Q?a?==?UTF-8?Q?b?="), "ab");
    /* a word in another charset than the one before it; an RFC 2231 language */
    assert_string_equal(decoded("=?UTF-8?Q?=C3=A9?= =?ISO-8859-15?Q?=A4?= =?utf-8*de?Q?x?="),
                        "\xc3\xa9\xe2\x82\xac"
                        "x");
    /* bytes the charset does not map become U+FFFD */
    assert_string_equal(decoded("=?UTF-8?Q?a=FFb?="), "a\xef\xbf\xbd"
                                                      "b");
    assert_string_equal(decoded("=?UTF-8?B?w6?="), "\xef\xbf\xbd"); /* cut sequence */
}

static void test_malformed_words_are_kept(void **state)
{
    (void)state;
    const char *kept[] = {
        "=?UTF-8?X?abc?=",           /* no such encoding */
        "=?UTF-8?Q?a b?=",           /* a blank inside */
        "=?UTF-8?Q?abc",             /* not closed */
        "=??Q?abc?=",                /* no charset */
        "=?x-no-such-charset?Q?a?=", /* unknown to iconv */
        "=?UTF-8//TRANSLIT?Q?a?=",   /* not a charset token */
        "=?UTF-8?B?@@@=x==?=",       /* broken base64 */
        "=?",
        "plain = ? text ?=",
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        assert_string_equal(decoded(kept[i]), kept[i]);
    /* a malformed word between two good ones keeps its blanks */
    assert_string_equal(decoded("=?UTF-8?Q?a?= =?x?Q?b?= =?UTF-8?Q?c?="), "a =?x?Q?b?= c");
}

static void test_decoded_words_are_bounded(void **state)
{
    (void)state;
    char out[8];
    /* cut to the buffer, not inside a UTF-8 sequence, whether decoded or as sent */
    assert_int_equal(mime_decode_words("=?UTF-8?Q?abcdef=C3=A9?=", out, sizeof(out)), 6);
    assert_string_equal(out, "abcdef");
    assert_int_equal(mime_decode_words("abcdef\xc3\xa9", out, sizeof(out)), 6);
    assert_string_equal(out, "abcdef");
    assert_int_equal(mime_decode_words("=?UTF-8?Q?a?=", out, 1), 0);
    assert_string_equal(out, "");
    /* 100 KB of encoded-word garbage: linear (a quadratic scan would take well over 5 s) */
    const char *patterns[] = {"=?",
                              "=?a?Q?",
                              "=?a?Q?x",
                              "=?UTF-8?Q?=C3=A9?= ",
                              "=?a?b?c?d",
                              "=?=?",
                              "=?a?Q?x?==?b?Q?x?=",
                              "=?latin1?Q?x?= =?utf-8?B?eA==?= "};
    size_t size = 100 * 1024;
    char *value = malloc(size + 1), *big = malloc(4 * size);
    assert_non_null(value);
    assert_non_null(big);
    for (size_t k = 0; k < sizeof(patterns) / sizeof(patterns[0]); k++) {
        size_t plen = strlen(patterns[k]), n = 0;
        while (n + plen <= size) {
            memcpy(value + n, patterns[k], plen);
            n += plen;
        }
        value[n] = '\0';
        struct timespec t0, t1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        size_t o = mime_decode_words(value, big, 4 * size);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
        assert_true(o <= n * 2);
        double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        print_message("%-22s %zu bytes in %.3f s\n", patterns[k], n, seconds);
        assert_true(seconds < 5.0);
    }
    free(value);
    free(big);
}

static void test_nul_is_replaced(void **state)
{
    (void)state;
    char out[8];
    /* a decoded NUL would end the C string the callers show: U+FFFD, cut whole when it does not fit */
    assert_int_equal(mime_decode_words("=?UTF-8?Q?a=00b?=", out, sizeof(out)), 5);
    assert_string_equal(out, "a\xef\xbf\xbd"
                             "b");
    assert_int_equal(mime_decode_words("=?UTF-8?B?AAA=?=", out, sizeof(out)), 6);
    assert_string_equal(out, "\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(mime_decode_words("=?UTF-8?Q?a=00=00?=", out, 6), 4);
    assert_string_equal(out, "a\xef\xbf\xbd");
    assert_int_equal(mime_decode_words("=?UTF-8?Q?=00=C3=A9?=", out, 5), 3);
    assert_string_equal(out, "\xef\xbf\xbd");
    static const char msg[] = "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nYQBi\r\n";
    mime_message *m = parse(msg);
    assert_int_equal(m->parts[0].len, 3);
    assert_int_equal(mime_part_to_utf8(&m->parts[0]), 0);
    assert_string_equal(m->parts[0].data, "a\xef\xbf\xbd"
                                          "b");
    assert_int_equal(m->parts[0].len, 5);
    done(m);
}

static void test_a_bad_byte_keeps_the_shift_state(void **state)
{
    (void)state;
    char out[32];
    /* ISO-2022-JP in JIS mode: after the bad byte, "$s" is still a kanji pair, not ASCII */
    mime_decode_words("=?ISO-2022-JP?Q?=1B$B$3=80$s=1B(B_ok?=", out, sizeof(out));
    assert_string_equal(out, "\xe3\x81\x93\xef\xbf\xbd\xe3\x82\x93 ok");
    static const char msg[] = "Content-Type: text/plain; charset=UTF-7\r\n\r\n+AGEA\x80YgBj-";
    mime_message *m = parse(msg);
    assert_int_equal(mime_part_to_utf8(&m->parts[0]), 0);
    assert_string_equal(m->parts[0].data, "a\xef\xbf\xbd"
                                          "bc"); /* UTF-7's base64 goes on */
    done(m);
}

static void test_bad_bytes_cost_linear_time(void **state)
{
    (void)state;
    /* 2 MiB that US-ASCII cannot read: one U+FFFD each, in linear time (iconv restarted on the rest of the
     * input after each bad byte cost quadratic time where a sanitizer checks that rest: over 10 s) */
    size_t size = 2 * 1024 * 1024;
    mime_part p;
    memset(&p, 0, sizeof(p));
    snprintf(p.charset, sizeof(p.charset), "ISO646-US");
    p.data = malloc(size + 1);
    assert_non_null(p.data);
    memset(p.data, 0x80, size);
    p.len = size;
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    assert_int_equal(mime_part_to_utf8(&p), 0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    assert_int_equal(p.len, 3 * size);
    assert_memory_equal(p.data + p.len - 3, "\xef\xbf\xbd", 3);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("%zu bad bytes in %.3f s\n", size, seconds);
    assert_true(seconds < 5.0);
    /* a character across the 4096-byte window iconv reads at once is read whole: Big5's U+4E00 at 4095 */
    snprintf(p.charset, sizeof(p.charset), "BIG5");
    memset(p.data, 'a', 4095);
    memcpy(p.data + 4095, "\xa4\x40z", 4);
    p.len = 4098;
    assert_int_equal(mime_part_to_utf8(&p), 0);
    assert_int_equal(p.len, 4095 + 3 + 1);
    assert_string_equal(p.data + 4095, "\xe4\xb8\x80z");
    free(p.data);
}

static void test_rfc2231_file_names(void **state)
{
    (void)state;
    mime_message *m = parse(
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        "Content-Disposition: attachment; filename=plain.txt; "
        "filename*=UTF-8''na%C3%AFve.txt\r\n\r\nx\r\n--b\r\n"
        "Content-Disposition: attachment;\r\n filename*0*=iso-8859-1'de'K%F6ln;\r\n filename*1=\" 2026\";\r\n"
        " filename*2*=%2Etxt\r\n\r\nx\r\n--b\r\n"
        "Content-Type: text/plain; name*=x-unknown''%C3%A9%FF\r\n\r\nx\r\n--b\r\n"
        "Content-Type: text/plain; name*0=a; name*2=c\r\n\r\nx\r\n--b--\r\n");
    assert_int_equal(m->nparts, 4);
    assert_string_equal(m->parts[0].filename, "na\xc3\xafve.txt"); /* filename* wins over filename */
    assert_string_equal(m->parts[1].filename, "K\xc3\xb6ln 2026.txt");
    assert_string_equal(m->parts[2].filename, "\xc3\xa9\xef\xbf\xbd"); /* unknown charset: read as UTF-8 */
    assert_string_equal(m->parts[3].filename, "a");                    /* sections stop at a gap */
    done(m);
}

static void test_parts_converted_to_utf8(void **state)
{
    (void)state;
    mime_message *m = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                            "Content-Type: text/plain; charset=\"ISO-8859-1\"\r\n"
                            "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n--b\r\n"
                            "Content-Type: text/html; charset=x-unknown\r\n\r\n<p>\xfc</p>\r\n--b\r\n"
                            "Content-Type: text/plain; charset=utf-8\r\n\r\n\xfc\r\n--b\r\n"
                            "Content-Type: text/plain; charset=shift_jis\r\n\r\n\x82\xa0\x82\r\n--b\r\n"
                            "Content-Type: application/octet-stream; name=\"=?UTF-8?Q?na=C3=AFve.txt?=\"\r\n"
                            "\r\nx\r\n--b--\r\n");
    assert_int_equal(m->nparts, 5);
    for (size_t i = 0; i < m->nparts; i++)
        assert_int_equal(mime_part_to_utf8(&m->parts[i]), 0);
    assert_string_equal(m->parts[0].charset, "ISO-8859-1");
    assert_string_equal(m->parts[0].data, "Gr\xc3\xbc\xc3\x9f"
                                          "e");
    assert_int_equal(m->parts[0].len, 7);
    assert_string_equal(m->parts[1].data, "<p>\xfc</p>");              /* unknown: as it was */
    assert_string_equal(m->parts[2].data, "\xfc");                     /* UTF-8: as it was */
    assert_string_equal(m->parts[3].data, "\xe3\x81\x82\xef\xbf\xbd"); /* a cut sequence: U+FFFD */
    assert_string_equal(m->parts[4].filename, "na\xc3\xafve.txt");
    done(m);
}

static void test_dates(void **state)
{
    (void)state;
    static const struct {
        const char *field, *want; /* want NULL: not a date */
    } cases[] = {
        {"Sun, 06 Dec 2026 14:40:05 +0000", "2026-12-06T14:40:05Z"},
        {"Sun, 6 Dec 2026 14:40:05 +0100", "2026-12-06T14:40:05+01:00"},
        {"6 Dec 2026 14:40 -0530", "2026-12-06T14:40:00-05:30"},
        {"Sunday,  06 December 2026 14:40:05 GMT", "2026-12-06T14:40:05Z"},
        {"Thu, 01 Jan 70 00:00:00 EST", "1970-01-01T00:00:00-05:00"},
        {"Fri, 29 Feb 2008 12:00:00 PDT (Pacific)", "2008-02-29T12:00:00-07:00"},
        {"Wed, 31 Dec 2025 23:59:60 +0000", "2025-12-31T23:59:60Z"},
        {"Tue, 6 Jan 2026 10:00:00 +0000 (UTC)", "2026-01-06T10:00:00Z"},
        {"", NULL},
        {"tomorrow", NULL},
        {"Sun, 06 Dec 2026 14:40:05", NULL},       /* no zone */
        {"Sun, 06 Dec 2026 14:40:05 +01", NULL},   /* a zone of two digits */
        {"Sun, 06 Dec 2026 14:40:05 +0160", NULL}, /* 60 minutes */
        {"Sun, 06 Dec 2026 14:40:05 CEST", NULL},  /* not a name RFC 5322 keeps */
        {"Mon, 31 Feb 2026 10:00:00 +0000", NULL}, /* no such day */
        {"Sun, 06 Dec 2026 14:40:05 +0000 x", NULL},
        {"Sun, 06 Dec 2026 25:40:05 +0000", NULL},
        {"Sun, 06 Dec 2026 14:40:61 +0000", NULL}, /* strptime's second 61: not in RFC 3339 */
        {"Sun, 06 Dec 2026 14:40:05 +2400", NULL}, /* an offset RFC 3339 cannot say */
        {"Sun, 06 Dec 2026 14:40:05 -9959", NULL},
        {"Sun, 06 Dec 2026 14:40:05 +2359", "2026-12-06T14:40:05+23:59"},
        {"Thu, 01 Jan 0070 00:00:00 +0000", "0070-01-01T00:00:00Z"}, /* four digits: the year itself */
        {"1 Jan 126 10:00 +0000", "2026-01-01T10:00:00Z"},           /* three: 1900 more */
        {"1 Jan 7 10:00 +0000", NULL},                               /* one: no year */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        int r = mime_date(cases[i].field, out, sizeof(out));
        if (cases[i].want == NULL) {
            assert_int_equal(r, -1);
            assert_string_equal(out, "");
        } else {
            assert_int_equal(r, 0);
            assert_string_equal(out, cases[i].want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_single_part_quoted_printable),
        cmocka_unit_test(test_nested_multipart),
        cmocka_unit_test(test_broken_input_is_shown_as_well_as_it_can_be),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_malformed_words_are_kept),
        cmocka_unit_test(test_decoded_words_are_bounded),
        cmocka_unit_test(test_parts_converted_to_utf8),
        cmocka_unit_test(test_rfc2231_file_names),
        cmocka_unit_test(test_nul_is_replaced),
        cmocka_unit_test(test_a_bad_byte_keeps_the_shift_state),
        cmocka_unit_test(test_bad_bytes_cost_linear_time),
        cmocka_unit_test(test_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
