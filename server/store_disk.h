/*
 * store_disk.h - durable copies of accepted messages in --store-dir: ID.eml (content) and ID.json (envelope).
 *
 * Both files are written to a temporary name, fsynced, renamed into place, and the directory is fsynced, all
 * on libuv's thread pool, so that the 250 reply is only sent once the message survives a crash.
 */
#ifndef SMTPFAULT_STORE_DISK_H
#define SMTPFAULT_STORE_DISK_H

#include <uv.h>

#include "store.h"

/* store_disk_done - status 0 when both files are durable, a libuv error code otherwise */
typedef void (*store_disk_done)(void *ctx, store_msg *msg, int status);

/* store_disk_prepare - create dir if needed and check it is writable; 0 or a libuv error code */
int store_disk_prepare(uv_loop_t *loop, const char *dir);

/* store_disk_write - write msg (a reference is held until done runs); 0, or a libuv error code */
int store_disk_write(uv_loop_t *loop, const char *dir, store_msg *msg, store_disk_done done, void *ctx);

#endif
