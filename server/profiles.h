/*
 * profiles.h - fault profiles from files: read, compile, report every error.
 */
#ifndef SMTPFAULT_PROFILES_H
#define SMTPFAULT_PROFILES_H

#include "fault.h"

#define PROFILES_FILE_MAX   (4 * 1024 * 1024)
#define PROFILES_PATH_MAX   4096 /* a profile directory or file path */
#define PROFILES_DIRS_MAX   16   /* directories searched by name: $SMTPFAULT_PROFILES's, then the shipped */
#define PROFILES_DIRS_STORE (3 * PROFILES_PATH_MAX + 1024)

/*
 * profiles_find - the file of a profile named by path or by name: an existing path as it is; a name
 * ("auth-535-wrong-password", ".json" optional) looked up in $SMTPFAULT_PROFILES (colon-separated
 * directories), then in the shipped profiles beside the binary (PREFIX/share/smtpfault/profiles for
 * PREFIX/bin/smtpfault, profiles/ in the build tree), then in the compiled-in install directory. 0 with the
 * path in out, or -1 when there is no such profile.
 */
int profiles_find(const char *name_or_path, char *out, size_t outsz);

/* profiles_find_shipped - the same for a name only: files outside the profile directories are never found */
int profiles_find_shipped(const char *name, char *out, size_t outsz);

/*
 * profiles_path_allowed - path resolves (no "..", no symlink leads out) to a file in a profile directory
 * ($SMTPFAULT_PROFILES, the shipped ones) or in one of allow (colon-separated directories, may be NULL).
 * 0 with the resolved path in out; a file that does not exist is allowed when its directory is (out is
 * then path as given). -1 otherwise.
 */
int profiles_path_allowed(const char *path, const char *allow, char *out, size_t outsz);

/* profiles_is_json - name ends in ".json" after at least one character */
int profiles_is_json(const char *name);

/*
 * profiles_scan - the *.json files of dir (names, not paths), sorted; 0 with *out (free it with
 * profiles_free_names) and *nout, or a libuv error code
 */
int profiles_scan(const char *dir, char ***out, size_t *nout);
void profiles_free_names(char **names, size_t n);

/* profiles_catalog_fn - one profile of the catalog: its name, file, and the compiled profile (NULL: invalid)
 */
typedef void (*profiles_catalog_fn)(void *ctx, const char *name, const char *path, const fault_profile *p);

/* profiles_catalog - fn for every profile found by name (as profiles_find), sorted; returns how many */
int profiles_catalog(profiles_catalog_fn fn, void *ctx);

/* profiles_list - every shipped profile, as "name  description" lines on stdout (`smtpfault profiles`) */
int profiles_list(void);

/*
 * profiles_load - compile the profile in file path. NULL when it cannot be read or has errors; errs holds
 * every message then ("PATH: rules[2].when.stage: ..."), and the caller frees it.
 */
fault_profile *profiles_load(const char *path, fault_errors *errs);

#endif
