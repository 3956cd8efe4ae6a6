/*
 * store_disk.c - durable message files, written on libuv's thread pool.
 *
 * The work function makes blocking uv_fs_* calls (no loop, no callback), which is what the thread pool is
 * for; the loop thread only builds the envelope JSON and handles the completion.
 */
#include "store_disk.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "fsutil.h"
#include "jsonutil.h"

typedef struct disk_job {
    uv_work_t work;
    char *dir;
    store_msg *msg;
    char *envelope; /* JSON text, built on the loop thread */
    int status;
    store_disk_done done;
    void *ctx;
} disk_job;

/* file_path - dir/id+ext into path; 0 or UV_ENAMETOOLONG */
static int file_path(char *path, size_t size, const char *dir, const char *id, const char *ext)
{
    int n = snprintf(path, size, "%s/%s%s", dir, id, ext);
    return n < 0 || (size_t)n >= size ? UV_ENAMETOOLONG : 0;
}

/* write_file - dir/id+ext, durably */
static int write_file(const char *dir, const char *id, const char *ext, const char *data, size_t len)
{
    char path[PATH_MAX];
    int r = file_path(path, sizeof(path), dir, id, ext);
    return r != 0 ? r : fsutil_write(path, data, len, 0644, 1);
}

/* remove_file - dir/id+ext, if it is there */
static void remove_file(const char *dir, const char *id, const char *ext)
{
    char path[PATH_MAX];
    if (file_path(path, sizeof(path), dir, id, ext) != 0)
        return;
    uv_fs_t req;
    uv_fs_unlink(NULL, &req, path, NULL);
    uv_fs_req_cleanup(&req);
}

static void disk_work(uv_work_t *work)
{
    disk_job *job = work->data;
    /* The envelope goes last: a complete ID.json means its ID.eml is complete too. */
    int r = write_file(job->dir, job->msg->id, ".eml", job->msg->body ? job->msg->body : "", job->msg->size);
    if (r != 0) {
        job->status = r;
        return;
    }
    r = write_file(job->dir, job->msg->id, ".json", job->envelope, strlen(job->envelope));
    if (r == 0)
        r = fsutil_fsync_dir(job->dir); /* the renames themselves */
    if (r != 0) {
        /* The client is told 451 and will send the message again: leave no half of it behind. */
        remove_file(job->dir, job->msg->id, ".json");
        remove_file(job->dir, job->msg->id, ".eml");
    }
    job->status = r;
}

static void disk_after(uv_work_t *work, int status)
{
    disk_job *job = work->data;
    job->done(job->ctx, job->msg, status != 0 ? status : job->status);
    store_msg_unref(job->msg);
    cJSON_free(job->envelope);
    free(job->dir);
    free(job);
}

int store_disk_write(uv_loop_t *loop, const char *dir, store_msg *msg, store_disk_done done, void *ctx)
{
    disk_job *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return UV_ENOMEM;
    cJSON *env = store_msg_envelope_json(msg);
    job->envelope = env ? json_print(env) : NULL;
    cJSON_Delete(env);
    job->dir = strdup(dir);
    if (job->envelope == NULL || job->dir == NULL) {
        cJSON_free(job->envelope);
        free(job->dir);
        free(job);
        return UV_ENOMEM;
    }
    job->msg = store_msg_ref(msg);
    job->done = done;
    job->ctx = ctx;
    job->work.data = job;
    int r = uv_queue_work(loop, &job->work, disk_work, disk_after);
    if (r != 0) {
        store_msg_unref(job->msg);
        cJSON_free(job->envelope);
        free(job->dir);
        free(job);
    }
    return r;
}

int store_disk_prepare(uv_loop_t *loop, const char *dir)
{
    uv_fs_t req;
    int r = uv_fs_mkdir(loop, &req, dir, 0755, NULL);
    uv_fs_req_cleanup(&req);
    if (r < 0 && r != UV_EEXIST)
        return r;
    r = uv_fs_access(loop, &req, dir, W_OK | X_OK, NULL);
    uv_fs_req_cleanup(&req);
    return r;
}
