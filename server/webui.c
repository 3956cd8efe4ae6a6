/*
 * webui.c - serves the web page's embedded files. The page may load only its own files and talk only to
 * this port; a message's HTML part is shown in a sandboxed frame (no scripts), whose inline styles and
 * data: images are allowed and whose remote images are not.
 */
#include "webui.h"

#include <string.h>

#define WEBUI_CSP                                                                                        \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " \
    "img-src 'self' data: blob:; connect-src 'self'; frame-src 'self' about:; base-uri 'none'; "         \
    "form-action 'none'; frame-ancestors 'none'\r\n"                                                     \
    "Referrer-Policy: no-referrer\r\n"

static const webui_file *find(const char *path, size_t n)
{
    if (n == 1 && path[0] == '/')
        return find("/index.html", 11);
    for (size_t i = 0; i < webui_nfiles; i++)
        if (strlen(webui_files[i].path) == n && memcmp(webui_files[i].path, path, n) == 0)
            return &webui_files[i];
    return NULL;
}

const webui_file *webui_find(const char *path)
{
    return find(path, strlen(path));
}

int webui_public(const char *path, size_t n)
{
    return find(path, n) != NULL;
}

const char *webui_headers(const webui_file *f)
{
    (void)f;
    return WEBUI_CSP;
}
