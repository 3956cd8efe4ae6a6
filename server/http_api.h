/*
 * http_api.h - the HTTP routes of the admin port: POST /api/v1/<command>, the REST reads, Mailpit's
 * message API subset, the health checks and the web page. admin_http.c frames a request and calls
 * http_api_handle; the routes answer through admin_http_send or the command layer (admin_run_request).
 */
#ifndef SMTPFAULT_HTTP_API_H
#define SMTPFAULT_HTTP_API_H

#include <stddef.h>

#include "admin.h"

/* http_request - one parsed request; every string is NUL-terminated and lives until the response */
typedef struct http_request {
    int method;       /* enum http_method */
    const char *path; /* as sent, without the query */
    const char *query;
    const char *body;
    size_t body_len;
} http_request;

/* http_api_public - path may be asked for without the token: the health checks and the page's files */
int http_api_public(int method, const char *path);

/* http_api_handle - answer r: at once, later (messages.wait), or as an event stream (events) */
void http_api_handle(admin_client *c, const http_request *r);

/* -- admin_http.c, for the routes --------------------------------------------------------------------- */

/*
 * admin_http_send - a whole response: status, content type, more header lines (each ending CRLF, or NULL)
 * and len bytes of body (copied)
 */
void admin_http_send(admin_client *c, int status, const char *ctype, const char *headers, const char *body,
                     size_t len);

/* admin_http_json - obj (taken over) as a JSON response with status: not a command's, so without "id" */
void admin_http_json(admin_client *c, int status, cJSON *obj);

/* admin_http_stream - the response of the request now running, when ok, starts an event stream */
void admin_http_stream(admin_client *c);

#endif
