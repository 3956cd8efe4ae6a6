/*
 * findings.h - what a client did wrong (or risky), as the server saw it: the vocabulary of findings (a
 * stable id, a severity, the RFC section or reason), one session's findings, and the pure scanners the
 * session uses to spot them in its input.
 *
 * A session keeps one record per finding id: the first line it came from and how many times it happened,
 * so its findings never take more than FINDING_COUNT records, whatever the client sends.
 */
#ifndef SMTPFAULT_FINDINGS_H
#define SMTPFAULT_FINDINGS_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#define FINDING_LINE_MAX  128 /* bytes of the line a finding comes from, as kept */
#define FINDING_EVENT_MAX 200 /* a "finding" event's text: id, severity and reference */

typedef enum finding_severity {
    FINDING_VIOLATION, /* the client broke a MUST or SHOULD of an RFC */
    FINDING_RISK,      /* allowed, but likely to lose or delay mail, or to leak credentials */
    FINDING_INFO,      /* what the client did, for the story */
} finding_severity;

/* X(ENUM, "id", severity, "reference: why") - every finding; ids are stable (tests assert on them) */
#define FINDING_LIST(X)                                                                                   \
    X(BARE_LF, "bare-lf", FINDING_VIOLATION, "RFC 5321 2.3.8: lines end with CRLF, a bare LF is not one") \
    X(BARE_CR, "bare-cr", FINDING_VIOLATION, "RFC 5321 2.3.8: a CR is sent only as part of CRLF")         \
    X(EARLY_TALKER, "early-talker", FINDING_VIOLATION,                                                    \
      "RFC 5321 3.1: the client waits for the greeting before it sends anything")                         \
    X(PIPELINING_NOT_OFFERED, "pipelining-not-offered", FINDING_VIOLATION,                                \
      "RFC 2920 3.1: commands go before the previous reply only once EHLO offered PIPELINING")            \
    X(NO_EHLO_AFTER_STARTTLS, "no-ehlo-after-starttls", FINDING_VIOLATION,                                \
      "RFC 3207 4.2: after the handshake the client sends EHLO again, as the server forgot it")           \
    X(COMMAND_AFTER_421, "command-after-421", FINDING_RISK,                                               \
      "RFC 5321 3.8: a 421 closes the connection, what follows it is lost")                               \
    X(AUTH_BEFORE_STARTTLS, "auth-before-starttls", FINDING_RISK,                                         \
      "RFC 3207 6, RFC 8314 3: credentials sent unencrypted while STARTTLS was offered")                  \
    X(EIGHTBIT_WITHOUT_8BITMIME, "8bit-without-8bitmime", FINDING_VIOLATION,                              \
      "RFC 6152 3: 8-bit message content needs BODY=8BITMIME on MAIL")                                    \
    X(SMTPUTF8_NOT_DECLARED, "smtputf8-not-declared", FINDING_VIOLATION,                                  \
      "RFC 6531 3.4: a UTF-8 address needs the SMTPUTF8 parameter on MAIL")                               \
    X(SIZE_EXCEEDED_ANYWAY, "size-exceeded-anyway", FINDING_VIOLATION,                                    \
      "RFC 1870 6: a message over the SIZE the server advertised is not sent")                            \
    X(DATA_AFTER_ALL_RCPT_REFUSED, "data-after-all-rcpt-refused", FINDING_VIOLATION,                      \
      "RFC 5321 3.3: DATA after every RCPT was refused (not pipelined) has no recipient to go to")        \
    X(NO_QUIT, "no-quit", FINDING_VIOLATION,                                                              \
      "RFC 5321 4.1.1.10: the client sends QUIT before it closes the connection")                         \
    X(RETRY_4XX, "retry-4xx", FINDING_INFO,                                                               \
      "RFC 5321 4.5.4.1: a 4xx is transient, the client tries again later")                               \
    X(RETRIED_5XX, "retried-5xx", FINDING_VIOLATION,                                                      \
      "RFC 5321 4.2.1: a 5xx is permanent, the client does not repeat the same request")                  \
    X(HAMMERING, "hammering", FINDING_RISK,                                                               \
      "RFC 5321 4.5.4.1: retries of a 4xx wait, and wait longer each time; these did not")                \
    X(GREYLIST_RETRY_TOO_SOON, "greylist-retry-too-soon", FINDING_RISK,                                   \
      "a greylisted recipient came back before the greylist time had passed, and was deferred again")     \
    X(CONNECTIONS_PAST_LIMIT, "connections-past-limit", FINDING_RISK,                                     \
      "the client opened connections past connections_per_client and was refused")                        \
    X(SENT_AFTER_RATE_LIMIT, "sent-after-rate-limit", FINDING_RISK,                                       \
      "the client sent more mail while a rate limit was refusing it")

typedef enum finding_id {
#define FINDING_ENUM(e, id, sev, ref) FINDING_##e,
    FINDING_LIST(FINDING_ENUM)
#undef FINDING_ENUM
        FINDING_COUNT
} finding_id;

/* finding - one finding of a session: where it first came from, and how often */
typedef struct finding {
    finding_id id;
    uint32_t count;
    int64_t first_ms;            /* wall clock of its first occurrence */
    uint64_t session;            /* the session it came from */
    char line[FINDING_LINE_MAX]; /* the client's line (raw bytes, sanitised when rendered) */
    size_t line_len;
} finding;

/* findings - a session's findings, one record per id, allocated on the first */
typedef struct findings {
    finding *items;
    size_t n;
} findings;

const char *finding_name(finding_id id);
finding_severity finding_severity_of(finding_id id);
const char *finding_severity_name(finding_severity sev);
const char *finding_reference(finding_id id);

/* finding_describe - "id (severity): reference", the text of a "finding" transcript event; its length */
size_t finding_describe(finding_id id, char *out, size_t outsz);

/*
 * findings_add - record id at wall time ms in session sid, from line (len bytes, cut to FINDING_LINE_MAX):
 * 1 the first time this id is seen here, 0 when it is only counted, -1 when out of memory.
 */
int findings_add(findings *f, finding_id id, int64_t ms, uint64_t sid, const char *line, size_t len);

/* findings_has - 1 when id was recorded */
int findings_has(const findings *f, finding_id id);

/* finding_json - one finding as {"id","severity","reference","count","time","session","line"} */
cJSON *finding_json(const finding *x);

/* findings_json - every finding, in the order they first happened */
cJSON *findings_json(const findings *f);

/* findings_move - hand from's records to *to (which must be empty); from is left empty */
void findings_move(findings *to, findings *from);

void findings_free(findings *f);

/* findings_text_scan - line endings and 8-bit bytes of a byte stream read in pieces (DATA content) */
typedef struct findings_text_scan {
    int prev_cr;  /* the last byte seen was a CR */
    int bare_lf;  /* an LF without a CR before it */
    int bare_cr;  /* a CR without an LF after it */
    int eightbit; /* a byte over 0x7f */
} findings_text_scan;

void findings_text_scan_init(findings_text_scan *t);

/* findings_text_scan_feed - n more bytes of the stream */
void findings_text_scan_feed(findings_text_scan *t, const char *p, size_t n);

/*
 * findings_line_ending - a command line as framed (raw_len bytes with its terminator, len without): a bare
 * LF ended it (FINDING_BARE_LF), a bare CR is inside it (FINDING_BARE_CR), or neither (FINDING_COUNT)
 */
finding_id findings_line_ending(const char *line, size_t len, size_t raw_len);

#endif
