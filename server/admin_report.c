/*
 * admin_report.c - the admin socket's client.report: the findings and retry story (client_story.h) of a
 * client address, or of a scope (whose connections make one story), or the client addresses that have one.
 */
#include "admin_cmd.h"

#include "server.h"

cJSON *cmd_client_report(admin_client *c, scope *sc, const cJSON *req, cJSON *id)
{
    (void)id;
    const client_stories *st = &admin_server(c)->stories;
    const cJSON *client = cJSON_GetObjectItemCaseSensitive(req, "client");
    if (client != NULL && !cJSON_IsString(client))
        return admin_error("bad_argument",
                           "\"client\" must be a string: a client address, as in sessions.list "
                           "but without the port");
    int in_scope = sc->id[0] != '\0';
    if (in_scope && client != NULL)
        return admin_error("bad_argument",
                           "a scope's connections make one story: give \"scope\" or \"client\", "
                           "not both");
    cJSON *report = NULL;
    if (in_scope || client != NULL) {
        char key[STORY_KEY_MAX];
        story_key(key, sizeof(key), in_scope ? "" : client->valuestring, sc->id);
        report = client_story_json(st, key);
        if (report == NULL)
            return admin_error("not_found",
                               "no story is kept for %s \"%.100s\" (no session since the start or "
                               "the last reset, or forgotten past %d stories)",
                               in_scope ? "the scope" : "the client", in_scope ? sc->id : client->valuestring,
                               STORY_CLIENTS_MAX);
    }
    cJSON *resp = cJSON_CreateObject();
    cJSON_AddBoolToObject(resp, "ok", 1);
    if (report != NULL)
        cJSON_AddItemToObject(resp, "report", report);
    else
        cJSON_AddItemToObject(resp, "clients", client_story_keys(st));
    return resp;
}
