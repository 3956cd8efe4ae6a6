/*
 * profiles.c - fault profiles from files.
 */
#include "profiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "fsutil.h"

/* add_error - one message into errs, for the errors that come before compiling */
static void add_error(fault_errors *errs, const char *text)
{
    char **msgs = realloc(errs->msgs, (errs->n + 1) * sizeof(*msgs));
    if (msgs == NULL)
        return;
    errs->msgs = msgs;
    if ((errs->msgs[errs->n] = strdup(text)) != NULL)
        errs->n++;
}

fault_profile *profiles_load(const char *path, fault_errors *errs)
{
    char *text = NULL;
    size_t len = 0;
    int r = fsutil_read(path, PROFILES_FILE_MAX, &text, &len);
    if (r != 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "%s: cannot read: %s", path,
                 r == UV_EFBIG ? "the file is larger than 4 MiB" : uv_strerror(r));
        add_error(errs, msg);
        return NULL;
    }
    fault_profile *p = fault_profile_compile(text, len, path, errs);
    free(text);
    return p;
}
