/*
 * profiles.h - fault profiles from files: read, compile, report every error.
 */
#ifndef SMTPFAULT_PROFILES_H
#define SMTPFAULT_PROFILES_H

#include "fault.h"

#define PROFILES_FILE_MAX (4 * 1024 * 1024)

/*
 * profiles_load - compile the profile in file path. NULL when it cannot be read or has errors; errs holds
 * every message then ("PATH: rules[2].when.stage: ..."), and the caller frees it.
 */
fault_profile *profiles_load(const char *path, fault_errors *errs);

#endif
