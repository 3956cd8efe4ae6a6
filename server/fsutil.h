/*
 * fsutil.h - whole-file reads and durable writes with libuv's synchronous file calls.
 *
 * Every call blocks. Used at start-up (certificates, the profile, the ports file), from libuv's thread pool
 * (--store-dir commits), and on the loop thread only for what an admin command asks for: profile.load reads
 * one profile file of at most PROFILES_FILE_MAX (4 MiB) from a local directory, a stall bounded by that
 * size and accepted for a test tool's control path. The SMTP path never calls these on the loop.
 */
#ifndef SMTPFAULT_FSUTIL_H
#define SMTPFAULT_FSUTIL_H

#include <stddef.h>

/*
 * fsutil_read - the whole file at path, NUL-terminated (the NUL is not counted in *len), in a malloc'd
 * buffer the caller frees. Files over max bytes are refused with UV_EFBIG, anything but a regular file
 * with UV_EINVAL. 0 or a libuv error code.
 */
int fsutil_read(const char *path, size_t max, char **data, size_t *len);

/*
 * fsutil_write - path holds exactly data once this returns 0: written to a new temporary file with an
 * unpredictable name in the same directory (created with O_EXCL|O_NOFOLLOW, so a planted file or symlink is
 * never written through), fsynced when durable is set, then renamed over path. A libuv error code otherwise.
 */
int fsutil_write(const char *path, const char *data, size_t len, int mode, int durable);

/* fsutil_fsync_dir - fsync a directory, so that renames into it survive a crash */
int fsutil_fsync_dir(const char *dir);

/* fsutil_mkdir - create dir (mode) unless it exists; 0 or a libuv error code */
int fsutil_mkdir(const char *dir, int mode);

#endif
