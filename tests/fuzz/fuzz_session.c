/*
 * fuzz_session.c - whole client byte streams through the real SMTP session over a fake transport.
 *
 * The first bytes choose the listener policy, the fault profile (none, or one whose rules fire delays,
 * drips, truncations, hangs, injected replies, greylisting and limits at every stage), whether commits
 * are answered at once or later, and where the stream is split. The host does what conn.c does, without
 * sockets: waits and drips end before the next chunk, STARTTLS "succeeds" at once. Everything the session
 * allocates must be freed and nothing may read or write out of bounds (ASan, UBSan).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "log.h"
#include "session.h"

#define OUT_LIMIT (4 * 1024 * 1024) /* output is counted, not kept */

static const char rich_profile[] =
    "{\"name\": \"fuzz\", \"seed\": 7, \"server\": {\"max_recipients\": 3, \"size\": 4096,"
    " \"users\": [{\"user\": \"u\", \"password\": \"p\"}]},"
    " \"ehlo\": {\"remove\": [\"DSN\"]},"
    " \"limits\": {\"messages_per_connection\": 3, \"messages_per_minute\": {\"max\": 5, \"per\": "
    "\"server\"}},"
    " \"rules\": ["
    "  {\"when\": {\"stage\": \"greeting\", \"nth\": 3}, \"do\": {\"reply\": \"554 5.7.1 go away\"}},"
    "  {\"when\": {\"stage\": \"ehlo\", \"helo\": \"slow*\"}, \"do\": {\"delay\": 5}},"
    "  {\"when\": {\"stage\": \"ehlo\", \"helo\": \"drip*\"}, \"do\": {\"drip\": 1000}},"
    "  {\"when\": {\"stage\": \"mail\", \"sender\": \"*@cut.test\"}, \"do\": {\"truncate\": 7}},"
    "  {\"when\": {\"stage\": \"mail\", \"sender\": \"*@hang.test\"}, \"do\": {\"hang\": true}},"
    "  {\"when\": {\"stage\": \"rcpt\", \"rcpt\": \"grey*\"}, \"do\": {\"greylist\": \"1s\"}},"
    "  {\"when\": {\"stage\": \"rcpt\", \"probability\": 0.2}, \"do\": {\"reply\": \"451-4.3.0 "
    "first\\nsecond\"}},"
    "  {\"when\": {\"stage\": \"rcpt\", \"rcpt\": \"ok*\"}, \"do\": {\"reply\": \"250 2.1.5 fine\"}},"
    "  {\"when\": {\"stage\": \"data\", \"every\": 2}, \"do\": {\"delay\": 1, \"reply\": \"354 go on\"}},"
    "  {\"when\": {\"stage\": \"data_end\", \"times\": 1}, \"do\": {\"discard\": true}},"
    "  {\"when\": {\"stage\": \"data_end\", \"rcpt\": \"reset*\"}, \"do\": {\"close\": \"reset\"}},"
    "  {\"when\": {\"stage\": \"auth\", \"auth\": false}, \"do\": {\"reply\": \"535 5.7.8 no\"}},"
    "  {\"when\": {\"stage\": \"starttls\", \"nth\": 2}, \"do\": {\"reply\": \"454 4.7.0 TLS not "
    "available\"}},"
    "  {\"when\": {\"stage\": [\"rset\", \"noop\", \"vrfy\", \"help\"], \"every\": 3}, \"do\": {\"raw\": "
    "\"999 raw\\r\\n\"}},"
    "  {\"when\": {\"stage\": \"unknown\"}, \"do\": {\"reply\": \"250 ok anyway\", \"close\": true}},"
    "  {\"when\": {\"stage\": \"quit\"}, \"do\": {\"delay\": 2}}"
    "]}";

typedef struct fake {
    session *s;
    size_t out;
    int closed;
    int waiting;
    int starttls;
    int async;
    store_msg *pending;
    int64_t now;
} fake;

static void fake_send(void *ctx, const char *data, size_t len)
{
    fake *f = ctx;
    (void)data;
    if (f->out + len < OUT_LIMIT)
        f->out += len;
}

static void fake_close(void *ctx, const char *reason, int reset)
{
    (void)reason, (void)reset;
    ((fake *)ctx)->closed = 1;
}

static void fake_commit(void *ctx, store_msg *m)
{
    fake *f = ctx;
    snprintf(m->id, sizeof(m->id), "FUZZ%zu", f->out);
    if (f->async) {
        f->pending = m;
        return;
    }
    session_commit_done(f->s, m->id);
    store_msg_unref(m);
}

static void fake_starttls(void *ctx)
{
    ((fake *)ctx)->starttls = 1;
}

static void fake_wait(void *ctx, uint32_t ms)
{
    fake *f = ctx;
    f->waiting = 1;
    f->now += ms;
}

static void fake_drip(void *ctx, uint32_t bps)
{
    (void)bps;
    ((fake *)ctx)->waiting = 1;
}

static int64_t fake_now(void *ctx)
{
    return ((fake *)ctx)->now;
}

static int64_t fake_wall_ms(void *ctx)
{
    (void)ctx;
    return 0; /* the envelope's times: no behaviour depends on them */
}

static void fake_event(void *ctx, int level, const char *event, const char *text, size_t len)
{
    (void)ctx, (void)level, (void)event, (void)text, (void)len;
}

static const session_host host = {fake_send, fake_close, fake_commit,  fake_starttls, fake_wait,
                                  fake_drip, fake_now,   fake_wall_ms, fake_event};

/* settle - what conn.c would do between reads: end waits, finish commits, complete STARTTLS */
static void settle(fake *f, int round)
{
    for (int i = 0; i < 8; i++) {
        if (f->pending != NULL) {
            store_msg *m = f->pending;
            f->pending = NULL;
            session_commit_done(f->s, (round + i) % 5 ? m->id : NULL);
            store_msg_unref(m);
        } else if (f->waiting) {
            f->waiting = 0;
            session_resume(f->s);
        } else if (f->starttls) {
            f->starttls = 0;
            session_tls_established(f->s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
        } else {
            return;
        }
    }
}

static fault_profile *rich;
static fault_profile *plain;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    log_setup(stderr, LOG_FORMAT_TEXT, LOG_ERROR);
    fault_errors errs = {NULL, 0};
    rich = fault_profile_compile(rich_profile, sizeof(rich_profile) - 1, "fuzz", &errs);
    if (rich == NULL) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        abort();
    }
    plain = fault_profile_default();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0], split = data[1];
    data += 2;
    size -= 2;
    static const char *const names[] = {"a"};
    static const char *const pws[] = {"b"};
    session_config cfg = {"mx.fuzz", 2048, 100, 8, 1, 0, 0, SASL_ALL_MECHS, {NULL, NULL, 0}, NULL};
    cfg.tls_required = (flags & 1) != 0;
    cfg.auth_required = (flags & 2) != 0;
    if (flags & 4) {
        cfg.users.names = names;
        cfg.users.passwords = pws;
        cfg.users.n = 1;
    }
    fault_run *run = fault_run_new((flags & 8) ? rich : plain, 0, (flags & 16) != 0);
    fault_addr addr = {4, {127, 0, 0, 1}};
    fault_conn *fc = run ? fault_conn_new(run, "smtp", &addr) : NULL;
    fake f;
    memset(&f, 0, sizeof(f));
    f.async = (flags & 32) != 0;
    session_info info = {1, "127.0.0.1:1", "smtp", fc};
    f.s = session_new(&cfg, &host, &f, &info);
    if (f.s == NULL)
        goto end;
    if (flags & 64)
        session_tls_established(f.s, "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256");
    session_start(f.s);
    settle(&f, 0);
    size_t off = 0;
    int round = 0;
    while (off < size && !f.closed) {
        size_t chunk = split ? 1 + (split + off * 31) % (size_t)(split + 1) : size - off;
        if (chunk > size - off)
            chunk = size - off;
        session_feed(f.s, (const char *)data + off, chunk);
        off += chunk;
        settle(&f, ++round);
    }
    if (flags & 128)
        session_shutdown(f.s);
    else
        session_timeout(f.s);
    if (f.pending != NULL)
        store_msg_unref(f.pending);
    session_free(f.s);
end:
    fault_conn_free(fc);
    fault_run_unref(run);
    return 0;
}
