/*
 * certs.h - the test PKI: a CA and the server certificates the TLS faults present.
 *
 * Every certificate is ECDSA P-256 with SHA-256, made with wolfCrypt. "valid" is signed by the CA and names
 * the host name, localhost, 127.0.0.1 and ::1; the others are wrong in exactly one way each, so that a
 * client verifying against the CA fails with the error its users would see. The set is generated at start
 * (nothing to set up for `make run`), or loaded from and written to a directory (`smtpfault certs DIR`,
 * `--certs-dir DIR`) so that clients can be given ca.pem.
 */
#ifndef SMTPFAULT_CERTS_H
#define SMTPFAULT_CERTS_H

#include <stddef.h>

#include "fault_tls.h"

typedef struct cert_pair {
    char *cert; /* PEM */
    char *key;  /* PEM, SEC1 "EC PRIVATE KEY" */
} cert_pair;

typedef struct cert_set {
    cert_pair ca;           /* the CA clients are told to trust */
    cert_pair untrusted_ca; /* the CA behind CERT_UNTRUSTED, which nobody trusts */
    cert_pair server[CERT_KIND_COUNT];
} cert_set;

/* cert_set_generate - a fresh PKI for hostname; 0, or -1 with a reason in err */
int cert_set_generate(cert_set *cs, const char *hostname, char *err, size_t errsz);

/* cert_set_write - DIR/ca.pem, DIR/ca.key, DIR/server.pem, ... and DIR/README; 0 or -1 with a reason */
int cert_set_write(const cert_set *cs, const char *dir, char *err, size_t errsz);

/* cert_set_load - read what cert_set_write wrote; 1 when DIR holds no set (ca.pem missing), 0, or -1 */
int cert_set_load(cert_set *cs, const char *dir, char *err, size_t errsz);

/* cert_set_use - replace the "valid" pair by the user's own (--cert/--key, PEM files); 0 or -1 */
int cert_set_use(cert_set *cs, const char *cert_file, const char *key_file, char *err, size_t errsz);

void cert_set_free(cert_set *cs);

#endif
