/*
 * fsutil.c - whole-file reads and durable writes (libuv synchronous fs calls).
 */
#include "fsutil.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#define FSUTIL_CHUNK         (1u << 30) /* one write call; uv_buf_t lengths are unsigned int */
#define FSUTIL_TEMP_ATTEMPTS 8          /* 64 random bits collide by accident practically never */

/* open_read - path opened read-only with flags added; the descriptor or a libuv error code */
static int open_read(const char *path, int flags)
{
    uv_fs_t req;
    int fd = uv_fs_open(NULL, &req, path, O_RDONLY | flags, 0, NULL);
    uv_fs_req_cleanup(&req);
    return fd;
}

int fsutil_read(const char *path, size_t max, char **data, size_t *len)
{
    uv_fs_t req;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (an admin "path" could name one). */
    int fd = open_read(path, O_NONBLOCK);
    if (fd < 0)
        return fd;
    int r = uv_fs_fstat(NULL, &req, fd, NULL);
    uint64_t size = req.statbuf.st_size;
    int regular = (req.statbuf.st_mode & S_IFMT) == S_IFREG;
    uv_fs_req_cleanup(&req);
    if (r == 0 && !regular)
        r = UV_EINVAL; /* devices, FIFOs, directories: not a file to read whole */
    char *buf = NULL;
    size_t got = 0;
    if (r == 0 && size > max)
        r = UV_EFBIG;
    if (r == 0 && (buf = malloc((size_t)size + 1)) == NULL)
        r = UV_ENOMEM;
    while (r == 0 && got < size) {
        uv_buf_t b =
            uv_buf_init(buf + got, (unsigned)(size - got > FSUTIL_CHUNK ? FSUTIL_CHUNK : size - got));
        int n = uv_fs_read(NULL, &req, fd, &b, 1, -1, NULL);
        uv_fs_req_cleanup(&req);
        if (n < 0)
            r = n;
        else if (n == 0)
            break; /* the file shrank while we read it */
        else
            got += (size_t)n;
    }
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    if (r != 0) {
        free(buf);
        return r;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return 0;
}

/*
 * open_temp - a new file next to path, named .NAME.RANDOM.tmp, created exclusively: in a directory others
 * can write to, nobody can plant a symlink or a file there beforehand to have us write through it. The fd,
 * with the name in tmp, or a libuv error code.
 */
static int open_temp(const char *path, int mode, char *tmp, size_t tmpsz)
{
    const char *slash = strrchr(path, '/');
    int r = UV_EEXIST;
    for (int attempt = 0; attempt < FSUTIL_TEMP_ATTEMPTS && r == UV_EEXIST; attempt++) {
        uint64_t rnd;
        r = uv_random(NULL, NULL, &rnd, sizeof(rnd), 0, NULL);
        if (r != 0)
            return r;
        int n = slash ? snprintf(tmp, tmpsz, "%.*s/.%s.%016llx.tmp", (int)(slash - path), path, slash + 1,
                                 (unsigned long long)rnd)
                      : snprintf(tmp, tmpsz, ".%s.%016llx.tmp", path, (unsigned long long)rnd);
        if (n < 0 || (size_t)n >= tmpsz)
            return UV_ENAMETOOLONG;
        uv_fs_t req;
        r = uv_fs_open(NULL, &req, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode, NULL);
        uv_fs_req_cleanup(&req);
    }
    return r;
}

int fsutil_write(const char *path, const char *data, size_t len, int mode, int durable)
{
    char tmp[PATH_MAX];
    int fd = open_temp(path, mode, tmp, sizeof(tmp));
    if (fd < 0)
        return fd;
    uv_fs_t req;
    int r = 0;
    size_t off = 0;
    while (off < len && r >= 0) {
        size_t chunk = len - off > FSUTIL_CHUNK ? FSUTIL_CHUNK : len - off;
        uv_buf_t buf = uv_buf_init((char *)data + off, (unsigned)chunk);
        r = uv_fs_write(NULL, &req, fd, &buf, 1, -1, NULL);
        uv_fs_req_cleanup(&req);
        if (r > 0)
            off += (size_t)r;
        else if (r == 0)
            r = UV_EIO;
    }
    if (r >= 0 && durable) {
        r = uv_fs_fsync(NULL, &req, fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    int rc = uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    if (r >= 0)
        r = rc;
    if (r >= 0) {
        r = uv_fs_rename(NULL, &req, tmp, path, NULL);
        uv_fs_req_cleanup(&req);
    }
    if (r < 0) {
        uv_fs_unlink(NULL, &req, tmp, NULL);
        uv_fs_req_cleanup(&req);
    }
    return r < 0 ? r : 0;
}

int fsutil_fsync_dir(const char *dir)
{
    uv_fs_t req;
    int fd = open_read(dir, O_DIRECTORY);
    if (fd < 0)
        return fd;
    int r = uv_fs_fsync(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    return r;
}

int fsutil_mkdir(const char *dir, int mode)
{
    uv_fs_t req;
    int r = uv_fs_mkdir(NULL, &req, dir, mode, NULL);
    uv_fs_req_cleanup(&req);
    return r == UV_EEXIST ? 0 : r;
}
