/*
 * profiles.c - fault profiles from files.
 */
#include "profiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "fsutil.h"

#define ALLOW_DIRS_MAX 16 /* directories in --admin-allow-paths */

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

/*
 * shipped_dirs - where the shipped profiles are, relative to the binary so that an installed, copied or
 * relocated tree works without the source: PREFIX/bin/smtpfault finds PREFIX/share/smtpfault/profiles, and
 * the build tree's binary finds the profiles/ link CMake puts beside it. The compiled-in install directory
 * comes last, for a binary copied out of its tree. Fills dirs[0..n) with paths in store.
 */
static size_t shipped_dirs(const char **dirs, size_t max, char *store, size_t store_size)
{
    static const char *const beside[] = {"/../share/smtpfault/profiles", "/profiles"};
    char exe[PROFILES_PATH_MAX];
    size_t len = sizeof(exe), n = 0, used = 0;
    if (uv_exepath(exe, &len) == 0) {
        char *slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        for (size_t i = 0; i < sizeof(beside) / sizeof(beside[0]) && n < max; i++) {
            int w = snprintf(store + used, store_size - used, "%s%s", exe, beside[i]);
            if (w < 0 || (size_t)w >= store_size - used)
                break;
            dirs[n++] = store + used;
            used += (size_t)w + 1;
        }
    }
    if (n < max)
        dirs[n++] = SMTPFAULT_PROFILES_DIR;
    return n;
}

/* search_dirs - the directories searched for a profile by name, in order: $SMTPFAULT_PROFILES first */
static size_t search_dirs(const char **dirs, size_t max, char *store, size_t store_size)
{
    size_t n = 0;
    const char *env = getenv("SMTPFAULT_PROFILES");
    if (env != NULL && env[0] != '\0') {
        snprintf(store, store_size, "%s", env);
        char *save = NULL;
        for (char *d = strtok_r(store, ":", &save); d != NULL && n < max; d = strtok_r(NULL, ":", &save))
            dirs[n++] = d;
        size_t used = strlen(env) + 1;
        store += used < store_size ? used : store_size;
        store_size -= used < store_size ? used : store_size;
    }
    return n + shipped_dirs(dirs + n, max - n, store, store_size);
}

/* real_path - path with symbolic links, "." and ".." resolved, in out; 0 or a libuv error */
static int real_path(const char *path, char *out, size_t outsz)
{
    uv_fs_t req;
    int r = uv_fs_realpath(NULL, &req, path, NULL);
    if (r == 0 && (size_t)snprintf(out, outsz, "%s", (const char *)req.ptr) >= outsz)
        r = UV_ENAMETOOLONG;
    uv_fs_req_cleanup(&req);
    return r;
}

/* within - real is dir or below it (both resolved) */
static int within(const char *real, const char *dir)
{
    size_t n = strlen(dir);
    if (n > 0 && dir[n - 1] == '/')
        n--; /* "/" itself */
    return strncmp(real, dir, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

/* in_allowed_dir - real (resolved) is in a profile directory or in one of allow */
static int in_allowed_dir(const char *real, const char *allow)
{
    const char *dirs[16 + ALLOW_DIRS_MAX];
    char env[4096], extra[4096], dir[4096];
    size_t n = search_dirs(dirs, 16, env, sizeof(env));
    if (allow != NULL) {
        snprintf(extra, sizeof(extra), "%s", allow);
        char *save = NULL;
        for (char *d = strtok_r(extra, ":", &save); d != NULL && n < 16 + ALLOW_DIRS_MAX;
             d = strtok_r(NULL, ":", &save))
            dirs[n++] = d;
    }
    for (size_t i = 0; i < n; i++)
        if (real_path(dirs[i], dir, sizeof(dir)) == 0 && within(real, dir))
            return 1;
    return 0;
}

int profiles_path_allowed(const char *path, const char *allow, char *out, size_t outsz)
{
    char real[4096];
    int r = real_path(path, real, sizeof(real));
    if (r == 0)
        return in_allowed_dir(real, allow) && (size_t)snprintf(out, outsz, "%s", real) < outsz ? 0 : -1;
    if (r != UV_ENOENT)
        return -1;
    /* Not there: say so only when it would be allowed, so that no one learns what exists elsewhere. */
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        snprintf(parent, sizeof(parent), ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    if (real_path(parent, real, sizeof(real)) != 0 || !in_allowed_dir(real, allow))
        return -1;
    return (size_t)snprintf(out, outsz, "%s", path) < outsz ? 0 : -1;
}

static int exists(const char *path)
{
    uv_fs_t req;
    int r = uv_fs_stat(NULL, &req, path, NULL);
    int file = r == 0 && (req.statbuf.st_mode & S_IFMT) == S_IFREG;
    uv_fs_req_cleanup(&req);
    return file;
}

int profiles_is_json(const char *name)
{
    size_t len = strlen(name);
    return len > 5 && strcmp(name + len - 5, ".json") == 0;
}

int profiles_find(const char *name, char *out, size_t outsz)
{
    if (strchr(name, '/') != NULL || exists(name)) {
        snprintf(out, outsz, "%s", name);
        return exists(name) ? 0 : -1;
    }
    return profiles_find_shipped(name, out, outsz);
}

int profiles_find_shipped(const char *name, char *out, size_t outsz)
{
    if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL) {
        snprintf(out, outsz, "%s", name);
        return -1; /* a name, never a path: nothing outside the profile directories */
    }
    int has_ext = profiles_is_json(name);
    const char *dirs[PROFILES_DIRS_MAX];
    char store[PROFILES_DIRS_STORE];
    size_t n = search_dirs(dirs, PROFILES_DIRS_MAX, store, sizeof(store));
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out, outsz, "%s/%s%s", dirs[i], name, has_ext ? "" : ".json");
        if (w > 0 && (size_t)w < outsz && exists(out))
            return 0;
    }
    snprintf(out, outsz, "%s", name);
    return -1;
}

/* first_sentence - the description up to its first ". " (or all of it), cut to max */
static void first_sentence(const char *d, char *out, size_t max)
{
    const char *stop = strstr(d, ". ");
    size_t n = stop ? (size_t)(stop - d) + 1 : strlen(d);
    if (n >= max) {
        snprintf(out, max, "%.*s...", (int)(max - 4), d);
        return;
    }
    snprintf(out, max, "%.*s", (int)n, d);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void profiles_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int profiles_scan(const char *dir, char ***out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    uv_fs_t req;
    int r = uv_fs_scandir(NULL, &req, dir, 0, NULL);
    if (r < 0) {
        uv_fs_req_cleanup(&req);
        return r;
    }
    char **names = calloc((size_t)r + 1, sizeof(*names));
    size_t n = 0;
    uv_dirent_t ent;
    while (names != NULL && uv_fs_scandir_next(&req, &ent) != UV_EOF)
        if (profiles_is_json(ent.name) && ent.type != UV_DIRENT_DIR && (names[n] = strdup(ent.name)) != NULL)
            n++;
    uv_fs_req_cleanup(&req);
    if (names == NULL)
        return UV_ENOMEM;
    qsort(names, n, sizeof(*names), name_cmp);
    *out = names;
    *nout = n;
    return 0;
}

int profiles_catalog(profiles_catalog_fn fn, void *ctx)
{
    const char *dirs[PROFILES_DIRS_MAX];
    char store[PROFILES_DIRS_STORE];
    size_t ndirs = search_dirs(dirs, PROFILES_DIRS_MAX, store, sizeof(store));
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (size_t d = 0; d < ndirs; d++) {
        char **files;
        size_t nfiles;
        if (profiles_scan(dirs[d], &files, &nfiles) != 0)
            continue;
        for (size_t f = 0; f < nfiles; f++) {
            size_t len = strlen(files[f]) - 5; /* without .json */
            int seen = 0; /* a name found in an earlier directory wins, as with --profile NAME */
            for (size_t i = 0; i < n && !seen; i++)
                seen = strncmp(names[i], files[f], len) == 0 && names[i][len] == '\0';
            if (seen)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                char **grown = realloc(names, cap * sizeof(*names));
                if (grown == NULL)
                    break;
                names = grown;
            }
            names[n++] = strndup(files[f], len);
        }
        profiles_free_names(files, nfiles);
    }
    qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++) {
        char path[PROFILES_PATH_MAX];
        fault_errors errs = {NULL, 0};
        fault_profile *p =
            profiles_find(names[i], path, sizeof(path)) == 0 ? profiles_load(path, &errs) : NULL;
        fn(ctx, names[i], path, p);
        fault_errors_free(&errs);
        fault_profile_unref(p);
    }
    profiles_free_names(names, n);
    return (int)n;
}

/* print_entry - one line of `smtpfault profiles` */
static void print_entry(void *ctx, const char *name, const char *path, const fault_profile *p)
{
    char line[90];
    if (p == NULL) {
        printf("%-44s (invalid: smtpfault check %s)\n", name, path);
        *(int *)ctx = 1;
        return;
    }
    first_sentence(fault_profile_settings(p)->description, line, sizeof(line));
    printf("%-44s %s\n", name, line);
}

int profiles_list(void)
{
    int bad = 0;
    int n = profiles_catalog(print_entry, &bad);
    if (n == 0)
        fprintf(stderr, "smtpfault: no profiles found (set SMTPFAULT_PROFILES to a directory of *.json)\n");
    return n == 0 || bad ? 1 : 0;
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
