/*
 * admin_report.c - the admin socket's client.report: one client's findings and retry story
 * (client_story.h), or the clients that have one.
 */
#include "admin_cmd.h"

#include "server.h"

cJSON *cmd_client_report(admin_client *c, const cJSON *req, cJSON *id)
{
    (void)id;
    const client_stories *st = &admin_server(c)->stories;
    const cJSON *client = cJSON_GetObjectItemCaseSensitive(req, "client");
    if (client != NULL && !cJSON_IsString(client))
        return admin_error("bad_argument",
                           "\"client\" must be a string: a client address, as in sessions.list "
                           "but without the port");
    cJSON *report = NULL;
    if (client != NULL) {
        report = client_story_json(st, client->valuestring);
        if (report == NULL)
            return admin_error("not_found",
                               "no story is kept for the client \"%.100s\" (no session since the "
                               "start or the last reset, or forgotten past %d clients)",
                               client->valuestring, STORY_CLIENTS_MAX);
    }
    cJSON *resp = cJSON_CreateObject();
    cJSON_AddBoolToObject(resp, "ok", 1);
    if (report != NULL)
        cJSON_AddItemToObject(resp, "report", report);
    else
        cJSON_AddItemToObject(resp, "clients", client_story_keys(st));
    return resp;
}
