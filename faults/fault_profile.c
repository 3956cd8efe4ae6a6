/*
 * fault_profile.c - the profile compiler: JSON text to an immutable fault_profile.
 *
 * Each JSON object kind of a profile is a field table (fault_schema.h): one row per key gives its type, its
 * range and where it goes, and drives the unknown-key check, the typed read and the error messages. Each
 * error names the source, the JSON path and what was expected; the compiler goes on after an error so that
 * one run reports them all, and a profile with any error is not built at all. This file holds the tables
 * and the rules between keys; cJSON is used only by the compiler: the compiled profile holds plain C data
 * in one arena, so the engine never walks JSON while serving.
 */
#include "fault_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "fault_schema.h"
#include "sf_assert.h"

#define MAX_RULES        1000
#define MAX_RAW          4096 /* raw bytes of one action */
#define MAX_PROFILE_TEXT (4 * 1024 * 1024)
#define MAX_REPLY_LINES  64
#define MAX_COMMENT      4096

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define K(name)  (1u << FAULT_ACTION_##name)

/* -- replies ----------------------------------------------------------------------------------------------
 */

/* compile_reply - a reply value: "text" (lines split at \n) or ["line", ...]; compiled into act */
static void compile_reply(compiler *c, const cJSON *v, const char *path, fault_action *act)
{
    const char *lines[MAX_REPLY_LINES];
    size_t n = 0;
    char *copy = NULL;
    if (cJSON_IsString(v)) {
        copy = strdup(v->valuestring);
        if (copy == NULL) {
            c->oom = 1;
            return;
        }
        for (char *line = copy, *next; line != NULL; line = next) {
            next = strchr(line, '\n');
            if (next != NULL)
                *next++ = '\0';
            if (next != NULL && *next == '\0')
                next = NULL; /* "550 x\r\n": a final line break ends the last line, it starts none */
            if (n == COUNT(lines)) {
                schema_error(c, path, "expected a reply of at most %zu lines", COUNT(lines));
                free(copy);
                return;
            }
            lines[n++] = line;
        }
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0 && cJSON_GetArraySize(v) <= (int)COUNT(lines)) {
        for (const cJSON *e = v->child; e != NULL; e = e->next) {
            if (!cJSON_IsString(e)) {
                schema_error(c, path, "expected reply lines as strings, got %s", schema_type_name(e));
                return;
            }
            lines[n++] = e->valuestring;
        }
    } else {
        schema_error(
            c, path,
            "expected a reply: a string such as \"550 5.1.1 User unknown\" (\\n between lines), or a "
            "list of lines (at most %zu)",
            COUNT(lines));
        return;
    }
    char buf[FAULT_REPLY_MAX], why[160];
    int len = fault_format_reply(lines, n, buf, sizeof(buf), &act->reply_code, why, sizeof(why));
    free(copy);
    if (len < 0) {
        schema_error(c, path, "%s", why);
        return;
    }
    const char *bad = fault_check_placeholders(buf);
    if (bad != NULL) {
        schema_error(c, path, "%s", bad);
        return;
    }
    act->reply = schema_keep(c, buf);
    act->reply_len = (size_t)len;
}

/* reply_field - "reply" into the fault_action at base + f->off */
static int reply_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    fault_action *act = (fault_action *)((char *)base + f->off);
    compile_reply(c, v, path, act);
    act->kinds |= K(REPLY);
    return 0;
}

/* default_reply - compile one of our own reply texts (they are known to be valid) */
static void default_reply(compiler *c, const char *text, fault_action *act)
{
    const char *lines[1] = {text};
    char buf[FAULT_REPLY_MAX], why[160];
    int len = fault_format_reply(lines, 1, buf, sizeof(buf), &act->reply_code, why, sizeof(why));
    SF_ASSERT(len > 0);
    if (len > 0) {
        act->reply = schema_keep(c, buf);
        act->reply_len = (size_t)len;
        act->kinds |= K(REPLY);
    }
}

/* -- conditions -------------------------------------------------------------------------------------------
 */

typedef struct list_ctx {
    const char **v;
    size_t n;
} list_ctx;

static void text_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    list_ctx *l = ctx;
    const char *t = schema_text(c, item, path, SCHEMA_TEXT_MAX);
    if (t != NULL)
        l->v[index] = schema_keep(c, t);
}

static void listener_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    list_ctx *l = ctx;
    int i = schema_choice(c, item, path, &fault_listener_names);
    if (i >= 0)
        l->v[index] = fault_listener_names.names[i];
}

/* alloc_items - room in the arena for the items of v, a value or a list of values; NULL (oom set) */
static void *alloc_items(compiler *c, const cJSON *v, size_t item_size)
{
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    void *items = fault_arena_alloc(&c->arena, item_size * (size_t)(n > 0 ? n : 1));
    if (items == NULL)
        c->oom = 1;
    return items;
}

/* compile_strings - a string or a list of them, each read by fn, into arena storage; their count */
static const char **compile_strings(compiler *c, const cJSON *v, const char *path, schema_item_fn fn,
                                    size_t *count)
{
    list_ctx l = {alloc_items(c, v, sizeof(*l.v)), 0};
    *count = 0;
    if (l.v == NULL)
        return NULL;
    int got = schema_each(c, v, path, fn, &l);
    *count = got > 0 ? (size_t)got : 0;
    return l.v;
}

/* listener_field - "listener": a listener name or a list of them */
static int listener_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    (void)f;
    fault_rule *r = base;
    r->listeners = compile_strings(c, v, path, listener_item, &r->nlisteners);
    return r->listeners != NULL ? 0 : -1;
}

static void cidr_item(compiler *c, const cJSON *item, const char *path, void *ctx, size_t index)
{
    fault_cidr *cidrs = ctx;
    const char *t = schema_text(c, item, path, 64);
    if (t == NULL)
        return;
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", t);
    char *slash = strchr(addr, '/');
    long prefix = -1;
    if (slash != NULL) {
        *slash = '\0';
        char *end;
        prefix = strtol(slash + 1, &end, 10);
        if (*end != '\0' || end == slash + 1)
            prefix = -2;
    }
    fault_cidr *cidr = &cidrs[index];
    int max = 0;
    if (fault_parse_addr(addr, &cidr->net) == 0)
        max = cidr->net.family == 4 ? 32 : 128;
    if (max == 0 || prefix < -1 || prefix > max) {
        schema_error(c, path,
                     "expected an IP address or a CIDR block (\"127.0.0.1\", \"10.0.0.0/8\", \"::1/128\"), "
                     "got \"%s\"",
                     t);
        return;
    }
    cidr->prefix = prefix < 0 ? max : (int)prefix;
}

/* client_field - "client": an address or CIDR block, or a list of them */
static int client_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    (void)f;
    fault_rule *r = base;
    if ((r->clients = alloc_items(c, v, sizeof(*r->clients))) == NULL)
        return -1;
    int got = schema_each(c, v, path, cidr_item, r->clients);
    r->nclients = got > 0 ? (size_t)got : 0;
    return 0;
}

/* stages_knowing - the stages at which a fact is known, for "condition can never match" errors */
#define STAGES_ALL      ((1u << FAULT_STAGE_COUNT) - 1)
#define STAGES_PRE_HELO ((1u << FAULT_STAGE_CONNECT) | (1u << FAULT_STAGE_GREETING))
#define STAGES_TX                                                                     \
    ((1u << FAULT_STAGE_MAIL) | (1u << FAULT_STAGE_RCPT) | (1u << FAULT_STAGE_DATA) | \
     (1u << FAULT_STAGE_DATA_END))
#define STAGES_RCPT ((1u << FAULT_STAGE_RCPT) | (1u << FAULT_STAGE_DATA) | (1u << FAULT_STAGE_DATA_END))
#define STAGES_USER \
    (STAGES_ALL & ~(STAGES_PRE_HELO | (1u << FAULT_STAGE_TLS_HANDSHAKE) | (1u << FAULT_STAGE_STARTTLS)))

static void stage_list(unsigned stages, char *out, size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < FAULT_STAGE_COUNT && o < outsz; i++)
        if (stages & (1u << i))
            o += (size_t)snprintf(out + o, outsz - o, "%s%s", o ? ", " : "", fault_stage_names.names[i]);
}

/* need_stages - the rule's stages must all be among known; an error naming the fact otherwise */
static void need_stages(compiler *c, const char *path, unsigned rule_stages, unsigned known, const char *what)
{
    unsigned bad = rule_stages & ~known;
    if (rule_stages == 0 || bad == 0)
        return;
    char badlist[300], oklist[300];
    stage_list(bad, badlist, sizeof(badlist));
    stage_list(known, oklist, sizeof(oklist));
    schema_error(c, path, "%s is not known at stage %s, so the rule could never fire there (known at: %s)",
                 what, badlist, oklist);
}

/* glob_fact - what a pattern condition matches, and the stages at which it is known */
typedef struct glob_fact {
    unsigned known;
    const char *what;
} glob_fact;

/* glob_field - a pattern or a list of them into the fault_globs at base + f->off; arg is its glob_fact */
static int glob_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    const glob_fact *fact = f->arg;
    fault_rule *r = base;
    fault_globs *g = (fault_globs *)((char *)base + f->off);
    g->v = compile_strings(c, v, path, text_item, &g->n);
    need_stages(c, path, r->stages, fact->known, fact->what);
    return g->v != NULL ? 0 : -1;
}

/* probability_field - "probability": a number from 0 to 1 */
static int probability_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    (void)f;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1)) {
        schema_error(c, path, "expected a number from 0 to 1");
        return -1;
    }
    ((fault_rule *)base)->probability = v->valuedouble;
    return 0;
}

/* count_needs_counter - "count" says what nth, every and times count: one of them must be there */
static const char *count_needs_counter(const void *base)
{
    const fault_rule *r = base;
    return r->nth == 0 && r->every == 0 && r->times == 0 ? "only means something with nth, every or times"
                                                         : NULL;
}

/* until_after_after - a window ends after it starts */
static const char *until_after_after(const void *base)
{
    const fault_rule *r = base;
    return r->after_ms != FAULT_NO_TIME && r->until_ms <= r->after_ms ? "must be later than \"after\"" : NULL;
}

static const glob_fact helo_fact = {STAGES_ALL & ~STAGES_PRE_HELO, "the HELO/EHLO name"};
static const glob_fact sender_fact = {STAGES_TX, "the sender"};
static const glob_fact rcpt_fact = {STAGES_RCPT, "the recipient"};
static const glob_fact user_fact = {STAGES_USER, "the user name"};

static const char *const count_scope_names[] = {"server", "connection"};
static const fault_names count_scopes = {count_scope_names, NULL, COUNT(count_scope_names), "counting scope"};

#define COUNTER_MAX 1000000000 /* nth, every, times */

/* "when": the conditions of a rule, into its fault_rule */
static const field when_fields[] = {
    {"stage", F_SET, .arg = &fault_stage_names, FIELD_AT(fault_rule, stages),
     .missing =
         "missing: every rule names the stage(s) it applies to (one of: connect, greeting, ehlo, ...)"},
    {"listener", F_CUSTOM, .parse = listener_field},
    {"client", F_CUSTOM, .parse = client_field},
    {"helo", F_CUSTOM, .parse = glob_field, .arg = &helo_fact, FIELD_AT(fault_rule, helo)},
    {"sender", F_CUSTOM, .parse = glob_field, .arg = &sender_fact, FIELD_AT(fault_rule, sender)},
    {"rcpt", F_CUSTOM, .parse = glob_field, .arg = &rcpt_fact, FIELD_AT(fault_rule, rcpt)},
    {"user", F_CUSTOM, .parse = glob_field, .arg = &user_fact, FIELD_AT(fault_rule, user)},
    {"tls", F_BOOL, FIELD_AT(fault_rule, tls)},
    {"auth", F_BOOL, FIELD_AT(fault_rule, auth)},
    {"nth", F_INT, 1, COUNTER_MAX, FIELD_AT(fault_rule, nth)},
    {"every", F_INT, 1, COUNTER_MAX, FIELD_AT(fault_rule, every)},
    {"times", F_INT, 1, COUNTER_MAX, FIELD_AT(fault_rule, times)},
    {"count", F_CHOICE, .arg = &count_scopes, FIELD_AT(fault_rule, per_connection),
     .check = count_needs_counter},
    {"probability", F_CUSTOM, .parse = probability_field},
    {"after", F_DURATION, FIELD_AT(fault_rule, after_ms)},
    {"until", F_DURATION, FIELD_AT(fault_rule, until_ms), .check = until_after_after},
    FIELD_COMMENT,
};

/* when_field - "when" into the rule at base */
static int when_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    (void)f;
    fault_rule *r = base;
    r->tls = r->auth = -1;
    r->probability = -1;
    r->after_ms = r->until_ms = FAULT_NO_TIME;
    return schema_parse(c, v, path, when_fields, COUNT(when_fields), r);
}

/* -- actions ----------------------------------------------------------------------------------------------
 */

/* compile_versions - ["1.2", "1.3"] into min and max; the versions must be contiguous */
static int compile_versions(compiler *c, const cJSON *v, const char *path, int *min, int *max)
{
    static const field set = {"versions", F_SET, .arg = &fault_version_names, .size = sizeof(unsigned)};
    unsigned versions = 0;
    size_t before = c->errs ? c->errs->n : 0;
    schema_read_one(c, v, path, &set, &versions);
    if (c->errs && c->errs->n != before)
        return -1;
    int lo = -1, hi = -1;
    for (int i = 0; i < TLS_VERSION_COUNT; i++)
        if (versions & (1u << i)) {
            if (lo < 0)
                lo = i;
            hi = i;
        }
    for (int i = lo; i >= 0 && i <= hi; i++)
        if (!(versions & (1u << i))) {
            schema_error(c, path, "the versions must be contiguous (TLS allows a range, not a set)");
            return -1;
        }
    *min = lo;
    *max = hi;
    return 0;
}

/* action_versions - "versions" of a "do" */
static int action_versions(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    (void)f;
    fault_action *a = base;
    return compile_versions(c, v, path, &a->tls_min, &a->tls_max);
}

/* raw_field - "raw": bytes to send as they are */
static int raw_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    (void)f;
    fault_action *a = base;
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0' || strlen(v->valuestring) > MAX_RAW) {
        schema_error(c, path,
                     "expected the bytes to send as a non-empty string of at most %d bytes (\\r\\n for CRLF)",
                     MAX_RAW);
        return -1;
    }
    a->raw_len = strlen(v->valuestring);
    a->raw = schema_keep(c, v->valuestring);
    return 0;
}

/* close_field - "close": true or "fin", or "reset" */
static int close_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    (void)f;
    fault_action *a = base;
    if (cJSON_IsTrue(v) || (cJSON_IsString(v) && strcmp(v->valuestring, "fin") == 0))
        a->close = FAULT_CLOSE_FIN;
    else if (cJSON_IsString(v) && strcmp(v->valuestring, "reset") == 0)
        a->close = FAULT_CLOSE_RST;
    else {
        schema_error(c, path, "expected true or \"fin\" (an orderly close), or \"reset\" (an RST)");
        return -1;
    }
    return 0;
}

/* greylist_positive - a greylist period of 0 would let the first retry through at once */
static const char *greylist_positive(const void *base)
{
    return ((const fault_action *)base)->greylist_ms < 1 ? "a greylist period must be at least 1 ms" : NULL;
}

/* "do": the actions of a rule, into its fault_action. The first rows are the actions, in fault_action_kind
 * order (kinds_in relies on it). */
static const field do_fields[] = {
    {"delay", F_DURATION, FIELD_AT(fault_action, delay_ms)},
    {"reply", F_CUSTOM, .parse = reply_field},
    {"raw", F_CUSTOM, .parse = raw_field},
    {"truncate", F_INT, 1, MAX_RAW, FIELD_AT(fault_action, truncate)},
    {"drip", F_INT, 1, 1000000, FIELD_AT(fault_action, drip_bps)},
    {"close", F_CUSTOM, .parse = close_field},
    {"hang", F_FLAG, FIELD_AT(fault_action, hang)},
    {"discard", F_FLAG, FIELD_AT(fault_action, discard)},
    {"greylist", F_DURATION, FIELD_AT(fault_action, greylist_ms), .check = greylist_positive},
    {"tls_alert", F_CHOICE, .arg = &fault_alert_names, FIELD_AT(fault_action, tls_alert)},
    {"tls_plaintext", F_FLAG, FIELD_AT(fault_action, tls_plaintext)},
    {"certificate", F_CHOICE, .arg = &fault_cert_names, FIELD_AT(fault_action, certificate)},
    {"versions", F_CUSTOM, .parse = action_versions},
    {"refuse", F_FLAG, .size = 0}, /* listener modes: the kind bit is all they are */
    {"blackhole", F_FLAG, .size = 0},
    FIELD_COMMENT,
};

/* kinds_in - which action keys the "do" object holds, as 1u << fault_action_kind */
static unsigned kinds_in(const cJSON *d)
{
    unsigned kinds = 0;
    for (int i = 0; i < FAULT_ACTION_COUNT; i++) {
        SF_ASSERT(strcmp(do_fields[i].key, fault_action_name((fault_action_kind)i)) == 0);
        if (schema_get(d, do_fields[i].key) != NULL)
            kinds |= 1u << i;
    }
    return kinds;
}

/* check_combinations - actions that cannot be carried out together, or at the rule's stages */
static void check_combinations(compiler *c, const char *path, const fault_rule *r)
{
    unsigned k = r->act.kinds;
    static const struct {
        unsigned a, b;
    } exclusive[] = {
        {K(HANG), K(REPLY) | K(RAW) | K(CLOSE) | K(DRIP) | K(TRUNCATE) | K(DISCARD) | K(GREYLIST)},
        {K(RAW), K(REPLY) | K(DISCARD) | K(GREYLIST)},
        {K(DISCARD), K(REPLY) | K(CLOSE) | K(GREYLIST)},
        {K(TLS_ALERT), K(TLS_PLAINTEXT) | K(RAW) | K(HANG)},
        {K(TLS_PLAINTEXT), K(RAW) | K(HANG) | K(CERTIFICATE) | K(VERSIONS)},
        {K(REFUSE), ~(K(REFUSE))},
        {K(BLACKHOLE), ~(K(BLACKHOLE))},
    };
    for (size_t i = 0; i < COUNT(exclusive); i++) {
        unsigned clash = (k & exclusive[i].a) ? (k & exclusive[i].b & ~exclusive[i].a) : 0;
        if (clash == 0)
            continue;
        int x = __builtin_ctz(exclusive[i].a), y = __builtin_ctz(clash);
        schema_error(c, path, "\"%s\" cannot be combined with \"%s\"",
                     fault_action_name((fault_action_kind)x), fault_action_name((fault_action_kind)y));
    }
    static const struct {
        unsigned kinds;
        unsigned stages;
    } where[] = {
        {K(DISCARD), 1u << FAULT_STAGE_DATA_END},
        {K(GREYLIST), 1u << FAULT_STAGE_RCPT},
        {K(TLS_ALERT) | K(TLS_PLAINTEXT) | K(CERTIFICATE) | K(VERSIONS), 1u << FAULT_STAGE_TLS_HANDSHAKE},
        {K(REFUSE) | K(BLACKHOLE), 1u << FAULT_STAGE_CONNECT},
        {K(REPLY) | K(DRIP) | K(TRUNCATE), STAGES_ALL & ~(1u << FAULT_STAGE_TLS_HANDSHAKE)},
    };
    for (size_t i = 0; i < COUNT(where); i++) {
        unsigned used = k & where[i].kinds;
        unsigned bad = r->stages & ~where[i].stages;
        if (used == 0 || bad == 0 || r->stages == 0)
            continue;
        char badlist[300], oklist[300], p[SCHEMA_PATH_MAX];
        stage_list(bad, badlist, sizeof(badlist));
        stage_list(where[i].stages, oklist, sizeof(oklist));
        schema_path(p, path, fault_action_name((fault_action_kind)__builtin_ctz(used)), 0);
        schema_error(c, p, "does not apply at stage %s (only at: %s)", badlist, oklist);
    }
}

/* do_field - "do" into the rule at base: its actions, then whether they go together */
static int do_field(compiler *c, const cJSON *d, const char *path, const field *f, void *base)
{
    (void)f;
    fault_rule *r = base;
    fault_action *a = &r->act;
    a->tls_alert = a->certificate = a->tls_min = a->tls_max = -1;
    if (schema_check(c, d, path, do_fields, COUNT(do_fields)) != 0)
        return -1;
    a->kinds = kinds_in(d);
    if (a->kinds == 0) {
        schema_error(c, path, "no action (expected at least one of: delay, reply, raw, close, hang, ...)");
        return -1;
    }
    schema_read(c, d, path, do_fields, COUNT(do_fields), a);
    check_combinations(c, path, r);
    return 0;
}

/* -- rules ------------------------------------------------------------------------------------------------
 */

/* check_listener_rule - refuse/blackhole decide about the listener, before any connection: check the when */
static void check_listener_rule(compiler *c, const cJSON *w, const char *path)
{
    static const char *const allowed[] = {"stage", "listener", "after", "until", "comment"};
    if (!cJSON_IsObject(w))
        return;
    for (const cJSON *k = w->child; k != NULL; k = k->next) {
        size_t i;
        for (i = 0; i < COUNT(allowed); i++)
            if (strcmp(k->string, allowed[i]) == 0)
                break;
        if (i < COUNT(allowed))
            continue;
        char p[SCHEMA_PATH_MAX];
        schema_path(p, path, k->string, 0);
        schema_error(c, p,
                     "refuse and blackhole act on the listener before any connection exists: their rule may "
                     "only use stage, listener, after and until");
    }
}

static const field rule_fields[] = {
    {"name", F_TEXT, .max = 100, FIELD_AT(fault_rule, name)},
    FIELD_COMMENT,
    {"when", F_CUSTOM, .parse = when_field,
     .missing = "missing: every rule has a \"when\" (at least its stage)"},
    {"do", F_CUSTOM, .parse = do_field,
     .missing = "missing: every rule has a \"do\" (what to do when it fires)"},
};

static void compile_rule(compiler *c, const cJSON *v, const char *path, fault_rule *r)
{
    r->name = "";
    if (schema_parse(c, v, path, rule_fields, COUNT(rule_fields), r) != 0)
        return;
    const cJSON *w = schema_get(v, "when");
    if (w != NULL && schema_get(v, "do") != NULL && (r->act.kinds & (K(REFUSE) | K(BLACKHOLE)))) {
        char p[SCHEMA_PATH_MAX];
        schema_path(p, path, "when", 0);
        check_listener_rule(c, w, p);
    }
}

/* rules_field - "rules": a list of rules into the profile at base */
static int rules_field(compiler *c, const cJSON *x, const char *path, const field *f, void *base)
{
    (void)f;
    fault_profile *p = base;
    int count = cJSON_IsArray(x) ? cJSON_GetArraySize(x) : -1;
    if (count < 0 || count > MAX_RULES) {
        schema_error(c, path, "expected a list of at most %d rules, got %s", MAX_RULES,
                     count < 0 ? schema_type_name(x) : "more");
        return -1;
    }
    p->rules = fault_arena_alloc(&c->arena, sizeof(*p->rules) * (size_t)(count > 0 ? count : 1));
    if (p->rules == NULL) {
        c->oom = 1;
        return -1;
    }
    int i = 0;
    for (const cJSON *r = x->child; r != NULL; r = r->next, i++) {
        char q[SCHEMA_PATH_MAX];
        schema_path(q, path, NULL, i);
        compile_rule(c, r, q, &p->rules[i]);
    }
    SF_ASSERT(i == count);
    p->nrules = (size_t)count;
    return 0;
}

/* -- server settings --------------------------------------------------------------------------------------
 */

/* user_row - one {"user", "password"} entry */
typedef struct user_row {
    const char *user, *password;
} user_row;

/* user_not_empty - an empty name could never be typed */
static const char *user_not_empty(const void *base)
{
    const char *name = ((const user_row *)base)->user;
    return name != NULL && name[0] == '\0' ? "a user name cannot be empty" : NULL;
}

static const field user_fields[] = {
    {"user", F_TEXT, .max = 256, FIELD_AT(user_row, user), .check = user_not_empty, .missing = "missing"},
    {"password", F_TEXT, .max = 256, FIELD_AT(user_row, password), .missing = "missing"},
};

/* users_field - "users": a list of {"user", "password"} into the settings at base */
static int users_field(compiler *c, const cJSON *x, const char *path, const field *f, void *base)
{
    (void)f;
    fault_settings *s = base;
    if (!cJSON_IsArray(x)) {
        schema_error(c, path, "expected a list of {\"user\": ..., \"password\": ...}, got %s",
                     schema_type_name(x));
        return -1;
    }
    size_t count = (size_t)cJSON_GetArraySize(x);
    const char **names = fault_arena_alloc(&c->arena, sizeof(char *) * (count + 1));
    const char **pws = fault_arena_alloc(&c->arena, sizeof(char *) * (count + 1));
    if (names == NULL || pws == NULL) {
        c->oom = 1;
        return -1;
    }
    int i = 0;
    for (const cJSON *e = x->child; e != NULL; e = e->next, i++) {
        char q[SCHEMA_PATH_MAX];
        user_row row = {NULL, NULL};
        schema_path(q, path, NULL, i);
        schema_parse(c, e, q, user_fields, COUNT(user_fields), &row);
        names[i] = row.user;
        pws[i] = row.password;
    }
    s->has_users = 1;
    s->user_names = names;
    s->user_passwords = pws;
    s->nusers = count;
    return 0;
}

/* hostname_ok - a host name is one word */
static const char *hostname_ok(const void *base)
{
    const char *t = ((const fault_settings *)base)->hostname;
    return t != NULL && (t[0] == '\0' || strpbrk(t, " \t") != NULL) ? "expected a host name without spaces"
                                                                    : NULL;
}

#define TEMPLATE_MAX 400 /* the greeting, banner and EHLO text: room for the code and the host name */

static const field server_fields[] = {
    {"hostname", F_TEXT, .max = 255, FIELD_AT(fault_settings, hostname), .check = hostname_ok},
    {"greeting", F_TEMPLATE, .max = TEMPLATE_MAX, FIELD_AT(fault_settings, greeting)},
    {"banner", F_TEMPLATE, .max = TEMPLATE_MAX, FIELD_AT(fault_settings, banner)},
    {"ehlo_text", F_TEMPLATE, .max = TEMPLATE_MAX, FIELD_AT(fault_settings, ehlo_text)},
    {"size", F_SIZE, 1, 1LL << 40, FIELD_AT(fault_settings, size)},
    {"max_recipients", F_INT, 1, 1000000, FIELD_AT(fault_settings, max_recipients)},
    {"users", F_CUSTOM, .parse = users_field},
    {"auth_mechanisms", F_SET, .arg = &fault_mech_names, FIELD_AT(fault_settings, auth_mechs)},
    FIELD_COMMENT,
};

/* server_field - "server" into the settings at base + f->off; greeting and banner exclude each other */
static int server_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    if (schema_parse(c, v, path, server_fields, COUNT(server_fields), (char *)base + f->off) != 0)
        return -1;
    if (schema_get(v, "greeting") != NULL && schema_get(v, "banner") != NULL) {
        char p[SCHEMA_PATH_MAX];
        schema_path(p, path, "banner", 0);
        schema_error(c, p,
                     "give either \"greeting\" (the text after the host name) or \"banner\" (the whole "
                     "text), not both");
    }
    return 0;
}

/* settings_versions - "versions" of the "tls" section */
static int settings_versions(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    (void)f;
    fault_settings *s = base;
    return compile_versions(c, v, path, &s->tls_min, &s->tls_max);
}

static const field ehlo_fields[] = {
    {"remove", F_SET, .arg = &fault_ehlo_names, FIELD_AT(fault_settings, ehlo_remove)},
    FIELD_COMMENT,
};

static const field tls_fields[] = {
    {"certificate", F_CHOICE, .arg = &fault_cert_names, FIELD_AT(fault_settings, certificate)},
    {"versions", F_CUSTOM, .parse = settings_versions},
    FIELD_COMMENT,
};

/* -- limits -----------------------------------------------------------------------------------------------
 */

static const char *const limit_stage_names[] = {"mail", "rcpt", "data"};
static const int limit_stage_values[] = {FAULT_STAGE_MAIL, FAULT_STAGE_RCPT, FAULT_STAGE_DATA};
static const fault_names limit_stages = {limit_stage_names, limit_stage_values, COUNT(limit_stage_names),
                                         "stage"};
static const char *const limit_scope_names[] = {"client", "server"};
static const fault_names limit_scopes = {limit_scope_names, NULL, COUNT(limit_scope_names), "scope"};

/* A limit's object; connection limits take the first 3 rows, message limits 4 ("at"), per-minute all 5. */
static const field limit_fields[] = {
    {"max", F_INT, 1, 1000000, FIELD_AT(fault_limit, max), .missing = "missing"},
    {"reply", F_CUSTOM, .parse = reply_field, .off = offsetof(fault_limit, act)},
    FIELD_COMMENT,
    {"at", F_CHOICE, .arg = &limit_stages, FIELD_AT(fault_limit, at)},
    {"per", F_CHOICE, .arg = &limit_scopes, FIELD_AT(fault_limit, per_server)},
};

/* limit_kind - the keys a limit's object may hold and the reply given past it by default */
typedef struct limit_kind {
    size_t nkeys;
    const char *dflt;
} limit_kind;

static const limit_kind conns_limit = {3, "421 4.7.0 Too many connections from your IP, try again later"};
static const limit_kind msgs_limit = {4, "421 4.7.0 Too many messages for this session, try again later"};
static const limit_kind minute_limit = {5, "450 4.7.1 Error: too much mail, slow down"};

/* limit_field - a limit: a number (its max) or an object, into the fault_limit at base + f->off */
static int limit_field(compiler *c, const cJSON *v, const char *path, const field *f, void *base)
{
    const limit_kind *kind = f->arg;
    fault_limit *l = (fault_limit *)((char *)base + f->off);
    SF_ASSERT(kind->nkeys <= COUNT(limit_fields));
    l->at = FAULT_STAGE_MAIL;
    l->act.tls_alert = l->act.certificate = l->act.tls_min = l->act.tls_max = -1;
    if (cJSON_IsObject(v))
        schema_parse(c, v, path, limit_fields, kind->nkeys, l);
    else
        schema_read_one(c, v, path, &limit_fields[0], l);
    if (!(l->act.kinds & K(REPLY)))
        default_reply(c, kind->dflt, &l->act);
    return 0;
}

static const field limits_fields[] = {
    {"connections_per_client", F_CUSTOM, .parse = limit_field, .arg = &conns_limit,
     .off = offsetof(fault_profile, conns_per_client)},
    {"messages_per_connection", F_CUSTOM, .parse = limit_field, .arg = &msgs_limit,
     .off = offsetof(fault_profile, msgs_per_conn)},
    {"messages_per_minute", F_CUSTOM, .parse = limit_field, .arg = &minute_limit,
     .off = offsetof(fault_profile, msgs_per_minute)},
    FIELD_COMMENT,
};

/* -- the profile ------------------------------------------------------------------------------------------
 */

static const schema_table ehlo_table = SCHEMA_TABLE(ehlo_fields);
static const schema_table tls_table = SCHEMA_TABLE(tls_fields);
static const schema_table limits_table = SCHEMA_TABLE(limits_fields);

#define SEED_MAX 9007199254740991LL /* 2^53 - 1: the largest integer a JSON number keeps exactly */

static const field top_fields[] = {
    {"name", F_TEXT, .max = 100, FIELD_AT(fault_profile, settings.name)},
    {"description", F_TEXT, .max = MAX_COMMENT, FIELD_AT(fault_profile, settings.description)},
    {"seed", F_INT, 0, SEED_MAX, FIELD_AT(fault_profile, settings.seed)},
    {"magic", F_BOOL, FIELD_AT(fault_profile, settings.magic)},
    {"server", F_CUSTOM, .parse = server_field, .off = offsetof(fault_profile, settings)},
    {"ehlo", F_OBJECT, .arg = &ehlo_table, .off = offsetof(fault_profile, settings)},
    {"tls", F_OBJECT, .arg = &tls_table, .off = offsetof(fault_profile, settings)},
    {"limits", F_OBJECT, .arg = &limits_table},
    {"rules", F_CUSTOM, .parse = rules_field},
    FIELD_COMMENT,
};

static void settings_defaults(fault_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->name = "";
    s->description = "";
    s->magic = -1;
    s->certificate = s->tls_min = s->tls_max = -1;
}

/* json_error_position - line and column of the byte where cJSON stopped */
static void json_error_position(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

fault_profile *fault_profile_compile(const char *json, size_t len, const char *source, fault_errors *errs)
{
    compiler c = {source ? source : "profile", errs, 0, NULL, 0};
    if (len > MAX_PROFILE_TEXT) {
        schema_error(&c, "", "the profile is over %d bytes", MAX_PROFILE_TEXT);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (root != NULL) { /* cJSON stops after the first value: anything but white space after it is an error */
        while (end < json + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end < json + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (root == NULL) {
        int line, col;
        json_error_position(json, end ? end : json, &line, &col);
        schema_error(&c, "", "invalid JSON at line %d, column %d", line, col);
        return NULL;
    }
    fault_profile *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        cJSON_Delete(root);
        schema_error(&c, "", "out of memory");
        return NULL;
    }
    p->refs = 1;
    settings_defaults(&p->settings);
    schema_parse(&c, root, "", top_fields, COUNT(top_fields), p);
    cJSON_Delete(root);
    if (c.dropped > 0 && errs != NULL) {
        char text[160];
        snprintf(text, sizeof(text), "%s: ... and %zu more errors", c.source, c.dropped);
        schema_push(&c, text);
    }
    if (c.oom && errs != NULL && errs->n == 0)
        schema_push(&c, "out of memory");
    if (!schema_failed(&c))
        p->source = strndup(json, len);
    if (schema_failed(&c) || p->source == NULL) {
        fault_arena_free(c.arena);
        free(p);
        return NULL;
    }
    p->arena = c.arena;
    return p;
}

fault_profile *fault_profile_default(void)
{
    fault_profile *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->refs = 1;
    settings_defaults(&p->settings);
    p->source = strdup("{}");
    if (p->source == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

fault_profile *fault_profile_ref(fault_profile *p)
{
    p->refs++;
    return p;
}

void fault_profile_unref(fault_profile *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    fault_arena_free(p->arena);
    free(p->source);
    free(p);
}

const fault_settings *fault_profile_settings(const fault_profile *p)
{
    return &p->settings;
}

size_t fault_profile_nrules(const fault_profile *p)
{
    return p->nrules;
}

const char *fault_profile_rule_name(const fault_profile *p, size_t i)
{
    return i < p->nrules ? p->rules[i].name : "";
}

const char *fault_profile_source(const fault_profile *p)
{
    return p->source;
}
