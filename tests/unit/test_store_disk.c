/*
 * test_store_disk.c - --store-dir commits (server/store_disk.c) over a fake fsutil whose writes can be made
 * to fail: a failed commit leaves no file behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "store_disk.h"

/* -- the fake fsutil: real files, and failures on demand ------------------------------------------------ */

static const char *fail_suffix; /* fsutil_write fails (disk full) for a path ending so */
static int fail_fsync_dir;      /* fsutil_fsync_dir fails */

int fsutil_write(const char *path, const char *data, size_t len, int mode, int durable)
{
    (void)mode;
    (void)durable;
    size_t n = strlen(path), k = fail_suffix ? strlen(fail_suffix) : 0;
    if (fail_suffix != NULL && n >= k && strcmp(path + n - k, fail_suffix) == 0)
        return UV_ENOSPC;
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return UV_EIO;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : UV_EIO;
}

int fsutil_fsync_dir(const char *dir)
{
    (void)dir;
    return fail_fsync_dir ? UV_EIO : 0;
}

/* -- helpers ------------------------------------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    uv_loop_t loop;
    int done, status;
} fixture;

static void on_done(void *ctx, store_msg *msg, int status)
{
    (void)msg;
    fixture *fx = ctx;
    fx->done = 1;
    fx->status = status;
}

/* commit - write one message through store_disk_write and run the loop until it is done */
static void commit(fixture *fx, const char *id)
{
    store_msg *m = store_msg_new();
    assert_non_null(m);
    snprintf(m->id, sizeof(m->id), "%s", id);
    assert_int_equal(store_msg_set_sender(m, "a@example.org", 13), 0);
    assert_int_equal(store_msg_add_rcpt(m, "b@example.org", 13), 0);
    assert_int_equal(store_msg_append(m, "Subject: x\r\n\r\nbody\r\n", 20), 0);
    fx->done = 0;
    assert_int_equal(store_disk_write(&fx->loop, fx->dir, m, on_done, fx), 0);
    store_msg_unref(m);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_true(fx->done);
}

static int exists(const fixture *fx, const char *id, const char *ext)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s%s", fx->dir, id, ext);
    return access(path, F_OK) == 0;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/sf-store-disk-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fail_suffix = NULL;
    fail_fsync_dir = 0;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    static const char *const names[] = {"M1.eml", "M1.json"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", fx->dir, names[i]);
        unlink(path);
    }
    rmdir(fx->dir);
    uv_loop_close(&fx->loop);
    free(fx);
    return 0;
}

/* -- tests --------------------------------------------------------------------------------------------- */

static void test_commit_writes_both_files(void **state)
{
    fixture *fx = *state;
    commit(fx, "M1");
    assert_int_equal(fx->status, 0);
    assert_true(exists(fx, "M1", ".eml"));
    assert_true(exists(fx, "M1", ".json"));
}

static void test_disk_full_at_the_envelope_leaves_no_content(void **state)
{
    fixture *fx = *state;
    fail_suffix = ".json";
    commit(fx, "M1");
    assert_int_equal(fx->status, UV_ENOSPC);
    assert_false(exists(fx, "M1", ".eml"));
    assert_false(exists(fx, "M1", ".json"));
}

static void test_failed_directory_sync_leaves_no_file(void **state)
{
    fixture *fx = *state;
    fail_fsync_dir = 1;
    commit(fx, "M1");
    assert_int_equal(fx->status, UV_EIO);
    assert_false(exists(fx, "M1", ".eml"));
    assert_false(exists(fx, "M1", ".json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_writes_both_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_at_the_envelope_leaves_no_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_directory_sync_leaves_no_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
