/*
 * mailpit.c - Mailpit's message API, where it is cheap: a captured message as Mailpit's Message and
 * MessageSummary objects (addresses parsed from the header fields, text and HTML parts decoded by mime.c),
 * a subset of its search terms, and its DELETE. The messages come through the command layer
 * (messages.list, admin_find_message), so "scope" works as on every route.
 */
#define _GNU_SOURCE /* strcasestr */

#include "mailpit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/hash.h>

#include "admin_cmd.h"
#include "admin_http.h"
#include "mime.h"
#include "server.h"

#define MAILPIT_FIELD_MAX     998                     /* a header field read for its addresses or subject */
#define MAILPIT_DATE_MAX      32                      /* "2026-12-06T15:04:05+01:00" and its NUL */
#define MAILPIT_DECODED_MAX   (MAILPIT_FIELD_MAX * 3) /* a name or subject, encoded words decoded */
#define MAILPIT_SNIPPET_MAX   250                     /* MessageSummary.Snippet, as Mailpit cuts it */
#define MAILPIT_LIMIT_DEFAULT 50                      /* search results, Mailpit's default */
#define MAILPIT_TERMS_MAX     16                      /* search terms in one query */
#define MAILPIT_ALL           100000

/* -- addresses ------------------------------------------------------------------------------------------ */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* add_address - one mailbox ("Name <a@b>", "a@b", "\"Name\" <a@b>") as {"Name", "Address"} */
static void add_address(cJSON *list, char *item)
{
    item = trim(item);
    char *lt = strrchr(item, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    const char *name = "", *addr = item;
    if (lt != NULL && gt != NULL) {
        *lt = '\0';
        *gt = '\0';
        addr = trim(lt + 1);
        char *n = trim(item);
        size_t len = strlen(n);
        if (len >= 2 && n[0] == '"' && n[len - 1] == '"') {
            n[len - 1] = '\0';
            n++;
        }
        name = n;
    }
    char decoded[MAILPIT_DECODED_MAX + 1];
    (void)mime_decode_words(name, decoded, sizeof(decoded));
    if (strchr(addr, '@') == NULL)
        return; /* a group's name, "undisclosed-recipients:;" */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Name", decoded);
    cJSON_AddStringToObject(o, "Address", addr);
    cJSON_AddItemToArray(list, o);
}

/* address_list - the mailboxes of a header field's value, split at commas outside quotes and angles */
static cJSON *address_list(const char *value)
{
    cJSON *list = cJSON_CreateArray();
    char *copy = strdup(value);
    if (copy == NULL)
        return list;
    int quoted = 0, angle = 0;
    char *start = copy;
    for (char *p = copy;; p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (*p == '<' && !quoted)
            angle = 1;
        else if (*p == '>' && !quoted)
            angle = 0;
        if (*p == '\0' || (*p == ',' && !quoted && !angle)) {
            int last = *p == '\0';
            *p = '\0';
            add_address(list, start);
            if (last)
                break;
            start = p + 1;
        }
    }
    free(copy);
    return list;
}

static cJSON *field_addresses(const char *msg, size_t len, const char *name)
{
    char value[MAILPIT_FIELD_MAX + 1];
    (void)mime_header(msg, len, name, value, sizeof(value));
    return address_list(value);
}

/* -- a message as Mailpit shows it ----------------------------------------------------------------------- */

typedef struct view {
    const store_msg *m;
    cJSON *envelope; /* admin_message_summary */
    mime_message *mime;
    const mime_part *text, *html;
    cJSON *from, *to, *cc, *bcc, *reply_to;
    char subject[MAILPIT_DECODED_MAX + 1]; /* encoded words decoded */
    char message_id[MAILPIT_FIELD_MAX + 1];
    char date[MAILPIT_DATE_MAX]; /* the Date field in RFC 3339, "" when it has none */
} view;

static int body_part(const mime_part *p, const char *type)
{
    return strcmp(p->type, type) == 0 && !p->attachment && p->filename[0] == '\0';
}

typedef struct envelope_rcpt {
    const char *addr;
    size_t index; /* its place in the envelope */
} envelope_rcpt;

static int address_cmp(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* rcpt_cmp - by address (without regard to case), then by place: the first of equal ones first */
static int rcpt_cmp(const void *a, const void *b)
{
    const envelope_rcpt *x = a, *y = b;
    int c = strcasecmp(x->addr, y->addr);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

/*
 * add_hidden_rcpts - as Mailpit does for mail it receives: the envelope recipients that To, Cc and Bcc do
 * not show (without regard to case), the first of each, appended to Bcc in their order. Sorted look-ups:
 * comparing each of 1000 recipients with every address shown and every one added cost a search seconds.
 */
static void add_hidden_rcpts(view *v, const store_msg *m)
{
    const cJSON *lists[] = {v->to, v->cc, v->bcc}, *o;
    size_t n = 0, k = 0;
    for (size_t l = 0; l < 3; l++)
        n += (size_t)cJSON_GetArraySize(lists[l]);
    const char **shown = malloc((n + 1) * sizeof(*shown));
    envelope_rcpt *r = malloc((m->nrcpts + 1) * sizeof(*r));
    if (shown != NULL && r != NULL) {
        for (size_t l = 0; l < 3; l++)
            cJSON_ArrayForEach(o, lists[l])
            {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "Address");
                if (cJSON_IsString(a))
                    shown[k++] = a->valuestring;
            }
        qsort(shown, k, sizeof(*shown), address_cmp);
        for (size_t i = 0; i < m->nrcpts; i++)
            r[i] = (envelope_rcpt){m->rcpts[i], i};
        qsort(r, m->nrcpts, sizeof(*r), rcpt_cmp);
        /* hidden[i]: the i-th envelope recipient when it is added, in the envelope's order */
        const char **hidden = calloc(m->nrcpts + 1, sizeof(*hidden));
        for (size_t i = 0; hidden != NULL && i < m->nrcpts; i++)
            if ((i == 0 || strcasecmp(r[i].addr, r[i - 1].addr) != 0) &&
                bsearch(&r[i].addr, shown, k, sizeof(*shown), address_cmp) == NULL)
                hidden[r[i].index] = r[i].addr;
        for (size_t i = 0; hidden != NULL && i < m->nrcpts; i++)
            if (hidden[i] != NULL) {
                cJSON *b = cJSON_CreateObject();
                cJSON_AddStringToObject(b, "Name", "");
                cJSON_AddStringToObject(b, "Address", hidden[i]);
                cJSON_AddItemToArray(v->bcc, b);
            }
        free(hidden);
    }
    free(shown);
    free(r);
}

/* view_open - what the shapes need of m: parsed once; 0, or -1 when out of memory */
static int view_open(view *v, const store_msg *m)
{
    memset(v, 0, sizeof(*v));
    v->m = m;
    const char *msg = m->body ? m->body : "";
    v->mime = calloc(1, sizeof(*v->mime));
    if (v->mime == NULL || mime_parse(msg, m->size, v->mime) != 0)
        return -1;
    for (size_t i = 0; i < v->mime->nparts; i++) {
        mime_part *p = &v->mime->parts[i];
        if (v->text == NULL && body_part(p, "text/plain"))
            v->text = p;
        else if (v->html == NULL && body_part(p, "text/html"))
            v->html = p;
        else
            continue;
        if (mime_part_to_utf8(p) != 0)
            return -1;
    }
    v->envelope = admin_message_summary(m);
    cJSON *from = field_addresses(msg, m->size, "From");
    v->from = cJSON_DetachItemFromArray(from, 0);
    cJSON_Delete(from);
    if (v->from == NULL) {
        v->from = cJSON_CreateObject();
        cJSON_AddStringToObject(v->from, "Name", "");
        cJSON_AddStringToObject(v->from, "Address", m->sender ? m->sender : "");
    }
    v->to = field_addresses(msg, m->size, "To");
    v->cc = field_addresses(msg, m->size, "Cc");
    v->reply_to = field_addresses(msg, m->size, "Reply-To");
    v->bcc = field_addresses(msg, m->size, "Bcc");
    add_hidden_rcpts(v, m);
    char subject[MAILPIT_FIELD_MAX + 1];
    (void)mime_header(msg, m->size, "Subject", subject, sizeof(subject));
    (void)mime_decode_words(subject, v->subject, sizeof(v->subject));
    (void)mime_header(msg, m->size, "Message-ID", v->message_id, sizeof(v->message_id));
    char date[MAILPIT_FIELD_MAX + 1];
    (void)mime_header(msg, m->size, "Date", date, sizeof(date));
    (void)mime_date(date, v->date, sizeof(v->date));
    size_t n = strlen(v->message_id);
    if (n >= 2 && v->message_id[0] == '<' && v->message_id[n - 1] == '>') {
        memmove(v->message_id, v->message_id + 1, n - 2);
        v->message_id[n - 2] = '\0';
    }
    return 0;
}

static void view_close(view *v)
{
    if (v->mime != NULL)
        mime_free(v->mime);
    free(v->mime);
    cJSON_Delete(v->envelope);
    cJSON_Delete(v->from);
    cJSON_Delete(v->to);
    cJSON_Delete(v->cc);
    cJSON_Delete(v->bcc);
    cJSON_Delete(v->reply_to);
}

static const char *envelope_string(const view *v, const char *key)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(v->envelope, key);
    return cJSON_IsString(s) ? s->valuestring : "";
}

/* add_common - the fields Message and MessageSummary share */
static void add_common(cJSON *o, const view *v)
{
    cJSON_AddStringToObject(o, "ID", v->m->id);
    cJSON_AddStringToObject(o, "MessageID", v->message_id);
    cJSON_AddItemToObject(o, "From", cJSON_Duplicate(v->from, 1));
    cJSON_AddItemToObject(o, "To", cJSON_Duplicate(v->to, 1));
    cJSON_AddItemToObject(o, "Cc", cJSON_Duplicate(v->cc, 1));
    cJSON_AddItemToObject(o, "Bcc", cJSON_Duplicate(v->bcc, 1));
    cJSON_AddItemToObject(o, "ReplyTo", cJSON_Duplicate(v->reply_to, 1));
}

static void hex(const byte *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* attachment - a part that is not the text or HTML body, as Mailpit's Attachment */
static cJSON *attachment(const mime_part *p, size_t index)
{
    cJSON *o = cJSON_CreateObject();
    char id[24], cid[sizeof(p->content_id)];
    snprintf(id, sizeof(id), "%zu", index + 1);
    snprintf(cid, sizeof(cid), "%s", p->content_id[0] == '<' ? p->content_id + 1 : p->content_id);
    char *gt = strchr(cid, '>');
    if (gt != NULL)
        *gt = '\0';
    cJSON_AddStringToObject(o, "PartID", id);
    cJSON_AddStringToObject(o, "FileName", p->filename);
    cJSON_AddStringToObject(o, "ContentType", p->type);
    cJSON_AddStringToObject(o, "ContentID", cid);
    cJSON_AddNumberToObject(o, "Size", (double)p->len);
    byte digest[32];
    char text[65];
    cJSON *sums = cJSON_AddObjectToObject(o, "Checksums");
    if (wc_Md5Hash((const byte *)p->data, (word32)p->len, digest) == 0) {
        hex(digest, 16, text);
        cJSON_AddStringToObject(sums, "MD5", text);
    }
    if (wc_ShaHash((const byte *)p->data, (word32)p->len, digest) == 0) {
        hex(digest, 20, text);
        cJSON_AddStringToObject(sums, "SHA1", text);
    }
    if (wc_Sha256Hash((const byte *)p->data, (word32)p->len, digest) == 0) {
        hex(digest, 32, text);
        cJSON_AddStringToObject(sums, "SHA256", text);
    }
    return o;
}

/* list_unsubscribe - Mailpit's ListUnsubscribe: the field, and its <links> */
static cJSON *list_unsubscribe(const view *v)
{
    char value[MAILPIT_FIELD_MAX + 1], post[MAILPIT_FIELD_MAX + 1];
    const char *msg = v->m->body ? v->m->body : "";
    (void)mime_header(msg, v->m->size, "List-Unsubscribe", value, sizeof(value));
    (void)mime_header(msg, v->m->size, "List-Unsubscribe-Post", post, sizeof(post));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Header", value);
    cJSON *links = cJSON_AddArrayToObject(o, "Links");
    for (char *lt = strchr(value, '<'); lt != NULL; lt = strchr(lt + 1, '<')) {
        char *gt = strchr(lt, '>');
        if (gt == NULL)
            break;
        *gt = '\0';
        cJSON_AddItemToArray(links, cJSON_CreateString(lt + 1));
        lt = gt;
    }
    cJSON_AddStringToObject(o, "Errors", "");
    cJSON_AddStringToObject(o, "HeaderPost", post);
    return o;
}

/* message_json - Mailpit's Message */
static cJSON *message_json(const view *v)
{
    cJSON *o = cJSON_CreateObject();
    add_common(o, v);
    cJSON_AddStringToObject(o, "ReturnPath", v->m->sender ? v->m->sender : "");
    cJSON_AddStringToObject(o, "Subject", v->subject);
    cJSON_AddItemToObject(o, "ListUnsubscribe", list_unsubscribe(v));
    /* The Date field, as Mailpit gives it; the time the message was received when it has none (or no date).
     */
    cJSON_AddStringToObject(o, "Date", v->date[0] != '\0' ? v->date : envelope_string(v, "received"));
    cJSON_AddArrayToObject(o, "Tags");
    cJSON_AddStringToObject(o, "Username", v->m->auth_user ? v->m->auth_user : "");
    cJSON_AddStringToObject(o, "Text", v->text ? v->text->data : "");
    cJSON_AddStringToObject(o, "HTML", v->html ? v->html->data : "");
    cJSON_AddNumberToObject(o, "Size", (double)v->m->size);
    cJSON *inl = cJSON_AddArrayToObject(o, "Inline"), *att = cJSON_AddArrayToObject(o, "Attachments");
    for (size_t i = 0; i < v->mime->nparts; i++) {
        const mime_part *p = &v->mime->parts[i];
        if (p == v->text || p == v->html)
            continue;
        cJSON_AddItemToArray(p->content_id[0] && !p->attachment ? inl : att, attachment(p, i));
    }
    return o;
}

/* summary_json - Mailpit's MessageSummary */
static cJSON *summary_json(const view *v)
{
    cJSON *o = cJSON_CreateObject();
    add_common(o, v);
    cJSON_AddBoolToObject(o, "Read", 0);
    cJSON_AddStringToObject(o, "Subject", v->subject);
    cJSON_AddStringToObject(o, "Created", envelope_string(v, "received"));
    cJSON_AddStringToObject(o, "Username", v->m->auth_user ? v->m->auth_user : "");
    cJSON_AddArrayToObject(o, "Tags");
    cJSON_AddNumberToObject(o, "Size", (double)v->m->size);
    size_t attachments = 0;
    for (size_t i = 0; i < v->mime->nparts; i++)
        attachments += &v->mime->parts[i] != v->text && &v->mime->parts[i] != v->html;
    cJSON_AddNumberToObject(o, "Attachments", (double)attachments);
    /* The text's first characters, blanks collapsed; not cut inside a UTF-8 sequence. */
    char snippet[MAILPIT_SNIPPET_MAX * 4 + 1];
    size_t n = 0, chars = 0;
    const char *t = v->text ? v->text->data : "";
    for (; *t != '\0' && chars < MAILPIT_SNIPPET_MAX; t++) {
        int blank = *t == ' ' || *t == '\t' || *t == '\r' || *t == '\n';
        if (blank && (n == 0 || snippet[n - 1] == ' '))
            continue;
        snippet[n++] = blank ? ' ' : *t;
        chars += ((unsigned char)*t & 0xC0) != 0x80;
    }
    while (*t != '\0' && ((unsigned char)*t & 0xC0) == 0x80 && n < sizeof(snippet) - 1)
        snippet[n++] = *t++;
    while (n > 0 && snippet[n - 1] == ' ')
        n--;
    snippet[n] = '\0';
    cJSON_AddStringToObject(o, "Snippet", snippet);
    return o;
}

/* -- routes ------------------------------------------------------------------------------------------- */

/* send_message - the message req names, as Mailpit's Message */
static void send_message(admin_client *c, cJSON *req)
{
    cJSON *err = NULL;
    store_msg *m = admin_find_message(c, req, &err);
    cJSON_Delete(req);
    if (m == NULL) {
        admin_respond(c, err, NULL);
        return;
    }
    view v;
    if (view_open(&v, m) != 0) {
        view_close(&v);
        admin_respond(c, admin_error("internal", "out of memory"), NULL);
        return;
    }
    admin_http_json(c, 200, message_json(&v));
    view_close(&v);
}

void mailpit_message(admin_client *c, const http_request *r, cJSON *req)
{
    (void)r;
    send_message(c, req);
}

/* list - the first limit messages req (messages.list with its scope) matches, oldest first; NULL after
 * answering */
static cJSON *list(admin_client *c, cJSON *req, int limit)
{
    cJSON_DeleteItemFromObjectCaseSensitive(req, "limit");
    cJSON_AddNumberToObject(req, "limit", limit);
    cJSON *resp = admin_run_request(c, req, NULL);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok"))) {
        admin_respond(c, resp, NULL);
        return NULL;
    }
    return resp;
}

/* get_request - {"message": "", "scope": as req's} for admin_find_message */
static cJSON *get_request(const cJSON *req)
{
    cJSON *get = cJSON_CreateObject();
    cJSON_AddStringToObject(get, "message", "");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(req, "scope");
    if (sc != NULL)
        cJSON_AddItemToObject(get, "scope", cJSON_Duplicate(sc, 1));
    return get;
}

void mailpit_latest(admin_client *c, const http_request *r, cJSON *req)
{
    (void)r;
    cJSON *get = get_request(req);
    cJSON *resp = list(c, req, MAILPIT_ALL);
    cJSON_Delete(req);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(resp, "messages");
    const cJSON *id =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1), "id");
    if (resp != NULL && !cJSON_IsString(id))
        admin_respond(c, admin_error("not_found", "no message is kept"), NULL);
    if (!cJSON_IsString(id)) {
        cJSON_Delete(resp);
        cJSON_Delete(get);
        return;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(get, "message", cJSON_CreateString(id->valuestring));
    cJSON_Delete(resp);
    send_message(c, get);
}

/* search terms: field:value (value may be "quoted"), or a word; a leading '-' or '!' negates */
typedef enum {
    TERM_WORD,
    TERM_TO,
    TERM_FROM,
    TERM_CC,
    TERM_BCC,
    TERM_SUBJECT,
    TERM_MESSAGE_ID,
    TERM_ADDRESSED
} term_kind;

typedef struct term {
    term_kind kind;
    int negate;
    char value[256];
} term;

static const struct {
    const char *prefix;
    term_kind kind;
} term_prefixes[] = {
    {"to:", TERM_TO},
    {"from:", TERM_FROM},
    {"cc:", TERM_CC},
    {"bcc:", TERM_BCC},
    {"subject:", TERM_SUBJECT},
    {"message-id:", TERM_MESSAGE_ID},
    {"addressed:", TERM_ADDRESSED},
};

/* parse_query - the terms of q; how many, or -1 with *err set */
static int parse_query(const char *q, term *terms, cJSON **err)
{
    int n = 0;
    while (*q != '\0') {
        while (*q == ' ')
            q++;
        if (*q == '\0')
            break;
        if (n == MAILPIT_TERMS_MAX) {
            *err = admin_error("bad_argument", "a search has at most %d terms", MAILPIT_TERMS_MAX);
            return -1;
        }
        term *t = &terms[n++];
        memset(t, 0, sizeof(*t));
        if (*q == '-' || *q == '!') {
            t->negate = 1;
            q++;
        }
        t->kind = TERM_WORD;
        size_t word = strcspn(q, " \":");
        if (q[word] == ':') {
            size_t i;
            for (i = 0; i < sizeof(term_prefixes) / sizeof(term_prefixes[0]); i++)
                if (strncasecmp(q, term_prefixes[i].prefix, word + 1) == 0 &&
                    strlen(term_prefixes[i].prefix) == word + 1)
                    break;
            if (i == sizeof(term_prefixes) / sizeof(term_prefixes[0])) {
                *err = admin_error(
                    "bad_argument",
                    "smtpfault's search takes words and to:, from:, cc:, bcc:, addressed:, subject:, "
                    "message-id: (not \"%.*s\")",
                    (int)(word + 1 < 32 ? word + 1 : 32), q);
                return -1;
            }
            t->kind = term_prefixes[i].kind;
            q += word + 1;
        }
        size_t len;
        if (*q == '"') {
            q++;
            len = strcspn(q, "\"");
            snprintf(t->value, sizeof(t->value), "%.*s",
                     (int)(len < sizeof(t->value) ? len : sizeof(t->value) - 1), q);
            q += len + (q[len] == '"');
        } else {
            len = strcspn(q, " ");
            snprintf(t->value, sizeof(t->value), "%.*s",
                     (int)(len < sizeof(t->value) ? len : sizeof(t->value) - 1), q);
            q += len;
        }
    }
    return n;
}

/* in_addresses - value is part of a Name or an Address of list (without regard to case) */
static int in_addresses(const cJSON *list, const char *value)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "Name"),
                    *a = cJSON_GetObjectItemCaseSensitive(o, "Address");
        if ((cJSON_IsString(n) && strcasestr(n->valuestring, value)) ||
            (cJSON_IsString(a) && strcasestr(a->valuestring, value)))
            return 1;
    }
    return 0;
}

static int term_matches(const term *t, const view *v)
{
    cJSON *from = cJSON_CreateArray();
    cJSON_AddItemReferenceToArray(from, v->from);
    int hit = 0;
    switch (t->kind) {
    case TERM_TO:
        hit = in_addresses(v->to, t->value);
        break;
    case TERM_FROM:
        hit = in_addresses(from, t->value);
        break;
    case TERM_CC:
        hit = in_addresses(v->cc, t->value);
        break;
    case TERM_BCC:
        hit = in_addresses(v->bcc, t->value);
        break;
    case TERM_ADDRESSED:
        hit =
            in_addresses(v->to, t->value) || in_addresses(v->cc, t->value) || in_addresses(v->bcc, t->value);
        break;
    case TERM_SUBJECT:
        hit = strcasestr(v->subject, t->value) != NULL;
        break;
    case TERM_MESSAGE_ID:
        hit = strcasecmp(v->message_id, t->value) == 0;
        break;
    case TERM_WORD:
        hit = strcasestr(v->subject, t->value) || in_addresses(from, t->value) ||
              in_addresses(v->to, t->value) || in_addresses(v->cc, t->value) ||
              (v->text && strcasestr(v->text->data, t->value)) ||
              (v->html && strcasestr(v->html->data, t->value));
        break;
    }
    cJSON_Delete(from);
    return hit != t->negate;
}

/* take_number - the query parameter key of req as a count (removed from req); dflt when absent */
static int take_number(cJSON *req, const char *key, int dflt)
{
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(req, key);
    int n = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= MAILPIT_ALL ? (int)v->valuedouble
                                                                                      : dflt;
    cJSON_Delete(v);
    return n;
}

void mailpit_search(admin_client *c, const http_request *r, cJSON *req)
{
    (void)r;
    cJSON *query = cJSON_DetachItemFromObjectCaseSensitive(req, "query");
    int limit = take_number(req, "limit", MAILPIT_LIMIT_DEFAULT), start = take_number(req, "start", 0);
    term terms[MAILPIT_TERMS_MAX];
    cJSON *err = NULL;
    int nterms = cJSON_IsString(query) ? parse_query(query->valuestring, terms, &err) : 0;
    cJSON_Delete(query);
    if (err == NULL && nterms == 0)
        err = admin_error("bad_argument",
                          "give a search in \"query\": to:alice@example.com, subject:\"a b\", a word");
    if (err != NULL) {
        cJSON_Delete(req);
        admin_respond(c, err, NULL);
        return;
    }
    /* messages.list checks the request (its scope, no unknown argument) and answers an error; the messages
     * themselves are read from the scope's store, newest first as Mailpit sorts, each parsed once. */
    cJSON *resp = list(c, req, 1);
    scope *sc = resp != NULL ? admin_request_scope(c, req, &err) : NULL;
    cJSON_Delete(req);
    cJSON_Delete(resp);
    if (sc == NULL) {
        if (err != NULL)
            admin_respond(c, err, NULL);
        return;
    }
    cJSON *out = cJSON_CreateObject(), *found = cJSON_CreateArray();
    int total = 0, matched = 0;
    store_msg *m;
    TAILQ_FOREACH_REVERSE(m, &sc->store.msgs, store_msgs, link) {
        total++;
        view v;
        if (view_open(&v, m) != 0) {
            view_close(&v);
            continue;
        }
        int hit = 1;
        for (int t = 0; t < nterms && hit; t++)
            hit = term_matches(&terms[t], &v);
        if (hit && matched >= start && cJSON_GetArraySize(found) < limit)
            cJSON_AddItemToArray(found, summary_json(&v));
        matched += hit;
        view_close(&v);
    }
    cJSON_AddNumberToObject(out, "total", total);
    cJSON_AddNumberToObject(out, "unread", total);
    cJSON_AddNumberToObject(out, "count", cJSON_GetArraySize(found));
    cJSON_AddNumberToObject(out, "messages_count", matched);
    cJSON_AddNumberToObject(out, "messages_unread", matched);
    cJSON_AddNumberToObject(out, "start", start);
    cJSON_AddArrayToObject(out, "tags");
    cJSON_AddItemToObject(out, "messages", found);
    admin_http_json(c, 200, out);
}

void mailpit_delete(admin_client *c, const http_request *r, cJSON *req)
{
    /* Mailpit's body: {"IDs": [...]}, or none (or no IDs) for every message; the answer is "ok" as text. */
    cJSON *body = r->body_len ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(body, "IDs");
    cJSON *err = NULL;
    if (r->body_len > 0 && !cJSON_IsObject(body))
        err = admin_error("bad_request", "the body is {\"IDs\": [\"ID\", ...]}, or empty for every message");
    for (const cJSON *id = cJSON_IsArray(ids) ? ids->child : NULL; id != NULL && err == NULL; id = id->next) {
        cJSON *del = cJSON_Duplicate(req, 1);
        cJSON_ReplaceItemInObjectCaseSensitive(del, "cmd", cJSON_CreateString("messages.delete"));
        cJSON_AddItemToObject(del, "message", cJSON_Duplicate(id, 1));
        cJSON *resp = admin_run_request(c, del, NULL);
        cJSON_Delete(del);
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok")))
            err = resp;
        else
            cJSON_Delete(resp);
    }
    if (err == NULL && cJSON_GetArraySize(ids) == 0) {
        cJSON *resp = admin_run_request(c, req, NULL); /* messages.clear */
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok")))
            err = resp;
        else
            cJSON_Delete(resp);
    }
    cJSON_Delete(body);
    cJSON_Delete(req);
    if (err != NULL)
        admin_respond(c, err, NULL);
    else
        admin_http_send(c, 200, "text/plain", NULL, "ok", 2);
}
