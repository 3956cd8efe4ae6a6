/*
 * admin_http.h - HTTP/1.1 on the admin listeners: admin.c hands a connection whose first byte starts a
 * request line (an upper-case method) to admin_http.c, which frames requests with http-parser and answers
 * them through http_api.c. Both directions of that seam are declared here.
 */
#ifndef SMTPFAULT_ADMIN_HTTP_H
#define SMTPFAULT_ADMIN_HTTP_H

#include <stddef.h>

#include <cJSON.h>

#include "admin.h"
#include "bytebuf.h"

typedef struct admin_http admin_http;

/* -- admin_http.c, for admin.c ------------------------------------------------------------------------ */

/* admin_http_new - the HTTP state of connection c; NULL when out of memory */
admin_http *admin_http_new(admin_client *c);
void admin_http_free(admin_http *h);

/* admin_http_process - parse and answer the requests in c's input, in order, until one is deferred */
void admin_http_process(admin_client *c);

/* admin_http_partial - a request has started and is not complete yet (h may be NULL) */
int admin_http_partial(const admin_http *h);

/* admin_http_response - a command's response (out, printed as text, taken over) as an HTTP response */
void admin_http_response(admin_client *c, const cJSON *out, char *text, size_t len);

/* admin_http_event - an event line (not taken over) for a subscribed connection, as a Server-Sent Event */
void admin_http_event(admin_client *c, const char *line, size_t len);

/* -- admin.c, for admin_http.c ------------------------------------------------------------------------ */

/* admin_client_http - the connection's HTTP state (NULL: it speaks NDJSON) */
admin_http *admin_client_http(const admin_client *c);

/* admin_client_input - the bytes received and not consumed yet (consume what was parsed) */
bytebuf *admin_client_input(admin_client *c);

/* admin_client_busy - closing, refused, or a deferred response holds the queue: parse no further */
int admin_client_busy(const admin_client *c);

/* admin_client_send - len bytes of data (malloc'd, taken over), bounded as every admin output */
void admin_client_send(admin_client *c, char *data, size_t len);

/* admin_client_send_copy - len bytes of data, copied (small ones into the gathered output: no allocation) */
void admin_client_send_copy(admin_client *c, const char *data, size_t len);

/* admin_client_finish - after what is queued: a FIN; the rest of the input is dropped, then it closes */
void admin_client_finish(admin_client *c);

/* admin_respond - resp (taken over) as the response to the request whose id is id (taken over) */
void admin_respond(admin_client *c, cJSON *resp, cJSON *id);

/* admin_output_check - the error for an output of len bytes past the bounds, or NULL when it may go */
cJSON *admin_output_check(const admin_client *c, size_t len);

/* admin_client_token_ok - given is the --admin-token (or none is set); the connection counts as authed */
int admin_client_token_ok(admin_client *c, const char *given);

/*
 * admin_parse_request - a request's JSON text, checked as an NDJSON line is (multiline: an HTTP body, where
 * line breaks are blanks); NULL with *err set
 */
cJSON *admin_parse_request(const char *text, size_t len, int multiline, cJSON **err);

/* admin_run_request - run req (an object with a "cmd" string, no key twice) as the NDJSON side does */
cJSON *admin_run_request(admin_client *c, const cJSON *req, cJSON *id);

/* admin_request_id - a copy of the request's "id" for its response, or NULL */
cJSON *admin_request_id(const cJSON *req);

#endif
