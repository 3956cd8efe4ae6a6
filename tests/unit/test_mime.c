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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_single_part_quoted_printable),
        cmocka_unit_test(test_nested_multipart),
        cmocka_unit_test(test_broken_input_is_shown_as_well_as_it_can_be),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
