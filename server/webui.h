/*
 * webui.h - the web page at / of the admin port: its files, embedded into the binary at build time
 * (server/webui/embed.cmake writes webui_files from server/webui/).
 */
#ifndef SMTPFAULT_WEBUI_H
#define SMTPFAULT_WEBUI_H

#include <stddef.h>

typedef struct webui_file {
    const char *path; /* "/app.js" */
    const char *type; /* its Content-Type */
    const unsigned char *data;
    size_t len;
} webui_file;

extern const webui_file webui_files[];
extern const size_t webui_nfiles;

/* webui_find - the file served at path ("/" is /index.html), or NULL */
const webui_file *webui_find(const char *path);

/* webui_public - the n bytes of path name one of the page's files (served without the token) */
int webui_public(const char *path, size_t n);

/* webui_headers - more header lines for f: the page's Content-Security-Policy */
const char *webui_headers(const webui_file *f);

#endif
