/*
 * mailpit.h - the part of Mailpit's message API that a test suite asserting through a Mailpit client uses:
 * GET /api/v1/message/latest and /message/{ID}, GET /api/v1/search?query=, DELETE /api/v1/messages, in
 * Mailpit's JSON shapes (docs/http.md says exactly which fields and search terms).
 */
#ifndef SMTPFAULT_MAILPIT_H
#define SMTPFAULT_MAILPIT_H

#include <cJSON.h>

#include "admin.h"
#include "http_api.h"

/* Each takes the request object its route built (the command, the query's parameters; taken over). */
void mailpit_message(admin_client *c, const http_request *r, cJSON *req);
void mailpit_latest(admin_client *c, const http_request *r, cJSON *req);
void mailpit_search(admin_client *c, const http_request *r, cJSON *req);
void mailpit_delete(admin_client *c, const http_request *r, cJSON *req);

#endif
