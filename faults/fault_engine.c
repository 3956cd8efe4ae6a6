/*
 * fault_engine.c - fault_decide(): which rule fires, and the state that rules, limits and the greylist
 * keep while a profile is in force.
 *
 * Order of precedence for one event: the profile's rules, first match wins; then its rate limits; then
 * magic addresses. A rule matches when its stage and every condition hold; its counters (nth, every,
 * times) then count the match, per server or per connection, and probability draws from the connection's
 * random stream, seeded from the profile's seed and the connection's ordinal in the run, so that a run
 * of the same clients against the same profile repeats exactly.
 */
#define _GNU_SOURCE /* FNM_CASEFOLD: addresses and host names compare without regard to case */

#include "fault_internal.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "sf_assert.h"

#define GREYLIST_MAX   65536 /* triples remembered; the oldest is forgotten first */
#define CLIENTS_MAX    65536 /* client addresses with rate-limit state */
#define MINUTE_MS      60000
#define MAGIC_TEXT_MAX 200

/* -- a small hash map with byte-string keys, oldest-first eviction ------------------------------------ */

typedef struct map_entry {
    struct map_entry *chain;         /* next in the bucket */
    struct map_entry *older, *newer; /* insertion order */
    void *value;
    size_t key_len;
    unsigned char key[];
} map_entry;

typedef struct map {
    map_entry **buckets;
    size_t nbuckets, count, max;
    uint64_t key; /* the hash's secret: a client cannot choose addresses that all land in one bucket */
    map_entry *oldest, *newest;
    void (*free_value)(void *);
} map;

/*
 * hash_bytes - FNV-1a from a secret start, then a full-avalanche finish (the MurmurHash3 finalizer), so
 * the bucket (the low bits) depends on every bit of the state: recipients and addresses are chosen by the
 * client, and plain FNV-1a lets it make thousands share a bucket (chains walked on every lookup).
 */
static uint64_t hash_bytes(uint64_t key, const unsigned char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ key;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* map_secret - a random key for a map's hash (the time and the address of the map when none is had) */
static uint64_t map_secret(const map *m)
{
    uint64_t k = 0;
    if (getrandom(&k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)m;
    }
    return k;
}

static map_entry **map_slot(map *m, const void *key, size_t len)
{
    if (m->nbuckets == 0)
        return NULL;
    map_entry **e = &m->buckets[hash_bytes(m->key, key, len) & (m->nbuckets - 1)];
    while (*e != NULL && ((*e)->key_len != len || memcmp((*e)->key, key, len) != 0))
        e = &(*e)->chain;
    return e;
}

static void *map_get(map *m, const void *key, size_t len)
{
    map_entry **e = map_slot(m, key, len);
    return e != NULL && *e != NULL ? (*e)->value : NULL;
}

static void map_unlink(map *m, map_entry **slot)
{
    map_entry *e = *slot;
    *slot = e->chain;
    if (e->older)
        e->older->newer = e->newer;
    else
        m->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        m->newest = e->older;
    m->count--;
    if (m->free_value)
        m->free_value(e->value);
    free(e);
}

static void map_remove(map *m, const void *key, size_t len)
{
    map_entry **e = map_slot(m, key, len);
    if (e != NULL && *e != NULL)
        map_unlink(m, e);
}

static int map_grow(map *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
    map_entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (map_entry *e = m->buckets[i], *next; e != NULL; e = next) {
            next = e->chain;
            map_entry **slot = &b[hash_bytes(m->key, e->key, e->key_len) & (n - 1)];
            e->chain = *slot;
            *slot = e;
        }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

/* map_put - add key (not present) with value; the oldest entry goes when the map is full. -1 on memory. */
static int map_put(map *m, const void *key, size_t len, void *value)
{
    if (m->count >= m->max && m->oldest != NULL)
        map_unlink(m, map_slot(m, m->oldest->key, m->oldest->key_len));
    if (m->count + 1 > m->nbuckets && map_grow(m) != 0)
        return -1;
    map_entry *e = malloc(sizeof(*e) + len);
    if (e == NULL)
        return -1;
    memcpy(e->key, key, len);
    e->key_len = len;
    e->value = value;
    map_entry **slot = &m->buckets[hash_bytes(m->key, key, len) & (m->nbuckets - 1)];
    e->chain = *slot;
    *slot = e;
    e->older = m->newest;
    e->newer = NULL;
    if (m->newest)
        m->newest->newer = e;
    else
        m->oldest = e;
    m->newest = e;
    m->count++;
    return 0;
}

/* map_free - every entry, bucket by bucket: linear, whatever the chains look like */
static void map_free(map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (map_entry *e = m->buckets[i], *next; e != NULL; e = next) {
            next = e->chain;
            if (m->free_value)
                m->free_value(e->value);
            free(e);
        }
    m->oldest = m->newest = NULL;
    m->count = 0;
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
}

/* -- random numbers ------------------------------------------------------------------------------------- */

/* splitmix64 - Steele, Lea and Flood's generator: tiny, fast, and good enough to draw probabilities */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* -- state ---------------------------------------------------------------------------------------------- */

/* rate_window - message times in the last minute, as a ring of at most max entries */
typedef struct rate_window {
    size_t head, count, max;
    int64_t t[];
} rate_window;

typedef struct client_state {
    uint32_t connections; /* live connections from this address */
    rate_window *messages;
} client_state;

typedef struct grey_entry {
    int64_t first_ms;
    int passed;
} grey_entry;

struct fault_run {
    unsigned refs;
    unsigned stages; /* 1u << stage for every stage where anything can fire: the rest are skipped at once */
    fault_profile *profile;
    int64_t start_ms;
    int magic; /* magic addresses answer */
    uint64_t next_ordinal;
    uint32_t *matches; /* per rule, counted per server */
    uint64_t *fired;   /* per rule */
    fault_stats stats;
    map clients;  /* fault_addr -> client_state */
    map greylist; /* "addr\0sender\0rcpt" -> grey_entry */
    rate_window *server_messages;
};

struct fault_conn {
    fault_run *run;
    const char *listener;
    fault_addr addr;
    uint64_t rng;
    uint32_t messages;   /* accepted on this connection */
    uint32_t concurrent; /* connections from this address when this one opened, itself included */
    int counted;         /* this connection is in its client_state */
    uint32_t *matches;   /* per rule, counted per connection (allocated when a rule needs it) */
    uint32_t *fired;
};

static void client_state_free(void *v)
{
    client_state *c = v;
    if (c != NULL)
        free(c->messages);
    free(c);
}

static rate_window *rate_window_new(size_t max)
{
    rate_window *w = calloc(1, sizeof(*w) + max * sizeof(int64_t));
    if (w != NULL)
        w->max = max;
    return w;
}

/* rate_count - entries within the minute before now, after dropping older ones */
static size_t rate_count(rate_window *w, int64_t now)
{
    while (w->count > 0 && now - w->t[w->head] >= MINUTE_MS) {
        w->head = (w->head + 1) % w->max;
        w->count--;
    }
    return w->count;
}

static void rate_add(rate_window *w, int64_t now)
{
    rate_count(w, now);
    if (w->count == w->max) { /* full: the oldest is the one that matters least */
        w->head = (w->head + 1) % w->max;
        w->count--;
    }
    SF_ASSERT(w->max > 0 && w->count < w->max);
    w->t[(w->head + w->count) % w->max] = now;
    w->count++;
}

fault_run *fault_run_new(fault_profile *p, int64_t now_ms, int magic)
{
    fault_run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    size_t n = p->nrules ? p->nrules : 1;
    r->matches = calloc(n, sizeof(*r->matches));
    r->fired = calloc(n, sizeof(*r->fired));
    if (p->msgs_per_minute.max > 0 && p->msgs_per_minute.per_server)
        r->server_messages = rate_window_new(p->msgs_per_minute.max);
    if (r->matches == NULL || r->fired == NULL ||
        (p->msgs_per_minute.max > 0 && p->msgs_per_minute.per_server && r->server_messages == NULL)) {
        free(r->matches);
        free(r->fired);
        free(r->server_messages);
        free(r);
        return NULL;
    }
    r->refs = 1;
    r->profile = fault_profile_ref(p);
    r->start_ms = now_ms;
    r->magic = p->settings.magic >= 0 ? p->settings.magic : magic;
    r->clients.max = CLIENTS_MAX;
    r->clients.key = map_secret(&r->clients);
    r->greylist.key = map_secret(&r->greylist);
    r->clients.free_value = client_state_free;
    r->greylist.max = GREYLIST_MAX;
    r->greylist.free_value = free;
    r->stats.fired_by_rule = r->fired;
    for (size_t i = 0; i < p->nrules; i++)
        if (!(p->rules[i].act.kinds & ((1u << FAULT_ACTION_REFUSE) | (1u << FAULT_ACTION_BLACKHOLE))))
            r->stages |= p->rules[i].stages;
    if (p->conns_per_client.max > 0)
        r->stages |= 1u << FAULT_STAGE_CONNECT;
    if (p->msgs_per_conn.max > 0)
        r->stages |= 1u << p->msgs_per_conn.at;
    if (p->msgs_per_minute.max > 0)
        r->stages |= 1u << p->msgs_per_minute.at;
    if (r->magic)
        r->stages |= (1u << FAULT_STAGE_MAIL) | (1u << FAULT_STAGE_RCPT) | (1u << FAULT_STAGE_DATA) |
                     (1u << FAULT_STAGE_DATA_END);
    return r;
}

fault_run *fault_run_ref(fault_run *r)
{
    r->refs++;
    return r;
}

void fault_run_unref(fault_run *r)
{
    if (r == NULL || --r->refs > 0)
        return;
    map_free(&r->clients);
    map_free(&r->greylist);
    free(r->server_messages);
    free(r->matches);
    free(r->fired);
    fault_profile_unref(r->profile);
    free(r);
}

const fault_profile *fault_run_profile(const fault_run *r)
{
    return r->profile;
}

void fault_run_stats(const fault_run *r, fault_stats *out)
{
    *out = r->stats;
}

/* client_key - the map key of an address: family byte and the address bytes */
static size_t client_key(const fault_addr *a, unsigned char key[17])
{
    key[0] = (unsigned char)a->family;
    size_t n = a->family == 6 ? 16 : 4;
    memcpy(key + 1, a->bytes, n);
    return n + 1;
}

/* client_get - the state of addr, made on first use (NULL when out of memory) */
static client_state *client_get(fault_run *r, const fault_addr *a)
{
    unsigned char key[17];
    size_t len = client_key(a, key);
    client_state *c = map_get(&r->clients, key, len);
    if (c != NULL)
        return c;
    c = calloc(1, sizeof(*c));
    if (c == NULL || map_put(&r->clients, key, len, c) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

fault_conn *fault_conn_new(fault_run *run, const char *listener, const fault_addr *addr)
{
    fault_conn *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return NULL;
    const fault_profile *p = run->profile;
    int need_conn_counters = 0;
    for (size_t i = 0; i < p->nrules; i++)
        need_conn_counters |= p->rules[i].per_connection;
    if (need_conn_counters) {
        fc->matches = calloc(p->nrules, sizeof(*fc->matches));
        fc->fired = calloc(p->nrules, sizeof(*fc->fired));
        if (fc->matches == NULL || fc->fired == NULL) {
            fault_conn_free(fc);
            return NULL;
        }
    }
    fc->run = fault_run_ref(run);
    fc->listener = listener;
    fc->addr = *addr;
    uint64_t ordinal = ++run->next_ordinal;
    uint64_t seed = p->settings.seed ^ (ordinal * 0xD1B54A32D192ED03ull);
    fc->rng = splitmix64(&seed);
    run->stats.connections++;
    if (p->conns_per_client.max > 0) {
        client_state *c = client_get(run, addr);
        if (c != NULL) {
            c->connections++;
            fc->concurrent = c->connections;
            fc->counted = 1;
        }
    }
    return fc;
}

void fault_conn_free(fault_conn *fc)
{
    if (fc == NULL)
        return;
    if (fc->counted) {
        unsigned char key[17];
        size_t len = client_key(&fc->addr, key);
        client_state *c = map_get(&fc->run->clients, key, len);
        if (c != NULL && c->connections > 0 && --c->connections == 0 && c->messages == NULL)
            map_remove(&fc->run->clients, key, len);
    }
    fault_run_unref(fc->run);
    free(fc->matches);
    free(fc->fired);
    free(fc);
}

fault_run *fault_conn_run(const fault_conn *fc)
{
    return fc->run;
}

void fault_conn_message_accepted(fault_conn *fc, int64_t now_ms)
{
    fault_run *r = fc->run;
    const fault_limit *l = &r->profile->msgs_per_minute;
    fc->messages++;
    if (l->max == 0)
        return;
    if (l->per_server) {
        rate_add(r->server_messages, now_ms);
        return;
    }
    client_state *c = client_get(r, &fc->addr);
    if (c == NULL)
        return;
    if (c->messages == NULL && (c->messages = rate_window_new(l->max)) == NULL)
        return;
    rate_add(c->messages, now_ms);
}

/* -- matching ------------------------------------------------------------------------------------------- */

static int glob_any(const fault_globs *g, const char *s)
{
    for (size_t i = 0; i < g->n; i++)
        if (fnmatch(g->v[i], s, FNM_CASEFOLD) == 0)
            return 1;
    return 0;
}

static int cidr_match(const fault_cidr *c, const fault_addr *a)
{
    fault_addr mapped;
    /* An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d: compare it as IPv4. */
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a->family == 6 && c->net.family == 4 && memcmp(a->bytes, v4mapped, 12) == 0) {
        mapped.family = 4;
        memcpy(mapped.bytes, a->bytes + 12, 4);
        a = &mapped;
    }
    if (c->net.family != a->family)
        return 0;
    int full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->net.bytes, a->bytes, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xFF << (8 - rest));
    return (c->net.bytes[full] & mask) == (a->bytes[full] & mask);
}

/* conditions_hold - every condition of r but the counters and probability */
static int conditions_hold(const fault_rule *r, const fault_conn *fc, fault_stage stage, const fault_facts *f,
                           int64_t t)
{
    if (!(r->stages & (1u << stage)))
        return 0;
    if (r->nlisteners > 0) {
        size_t i;
        for (i = 0; i < r->nlisteners; i++)
            if (strcmp(r->listeners[i], fc->listener) == 0)
                break;
        if (i == r->nlisteners)
            return 0;
    }
    if (r->nclients > 0) {
        size_t i;
        for (i = 0; i < r->nclients; i++)
            if (cidr_match(&r->clients[i], &fc->addr))
                break;
        if (i == r->nclients)
            return 0;
    }
    if (r->helo.n > 0 && (f->helo == NULL || !glob_any(&r->helo, f->helo)))
        return 0;
    if (r->sender.n > 0 && (f->sender == NULL || !glob_any(&r->sender, f->sender)))
        return 0;
    if (r->user.n > 0 && (f->user == NULL || !glob_any(&r->user, f->user)))
        return 0;
    if (r->rcpt.n > 0) {
        int any = 0;
        if (stage == FAULT_STAGE_RCPT)
            any = f->rcpt != NULL && glob_any(&r->rcpt, f->rcpt);
        for (size_t i = 0; !any && stage != FAULT_STAGE_RCPT && i < f->nrcpts; i++)
            any = glob_any(&r->rcpt, f->rcpts[i]);
        if (!any)
            return 0;
    }
    if (r->tls >= 0 && r->tls != (f->tls != 0))
        return 0;
    if (r->auth >= 0 && r->auth != (f->authenticated != 0))
        return 0;
    if (r->after_ms != FAULT_NO_TIME && t < r->after_ms)
        return 0;
    if (r->until_ms != FAULT_NO_TIME && t >= r->until_ms)
        return 0;
    return 1;
}

/* counters_allow - count the match; 1 when nth, every, times and probability let the rule fire */
static int counters_allow(const fault_rule *r, size_t i, fault_conn *fc)
{
    fault_run *run = fc->run;
    SF_ASSERT(i < run->profile->nrules);
    SF_ASSERT(!r->per_connection ||
              (fc->matches != NULL && fc->fired != NULL)); /* fault_conn_new made them */
    uint32_t k = r->per_connection ? ++fc->matches[i] : ++run->matches[i];
    if (r->nth > 0 && k != r->nth)
        return 0;
    if (r->every > 0 && k % r->every != 0)
        return 0;
    if (r->probability >= 0) {
        double u = (double)(splitmix64(&fc->rng) >> 11) * (1.0 / 9007199254740992.0);
        if (u >= r->probability)
            return 0;
    }
    uint64_t fired = r->per_connection ? fc->fired[i] : run->fired[i];
    if (r->times > 0 && fired >= r->times)
        return 0;
    return 1;
}

/* set_reply - a reply made up by the engine, into the decision's own storage */
static void set_reply(fault_decision *d, const char *text, fault_close close)
{
    const char *lines[1] = {text};
    char err[160];
    memset(&d->own, 0, sizeof(d->own));
    d->own.tls_alert = d->own.certificate = d->own.tls_min = d->own.tls_max = -1;
    int n = fault_format_reply(lines, 1, d->reply_buf, sizeof(d->reply_buf), &d->own.reply_code, err,
                               sizeof(err));
    if (n < 0)
        return;
    d->own.kinds = 1u << FAULT_ACTION_REPLY;
    d->own.reply = d->reply_buf;
    d->own.reply_len = (size_t)n;
    d->own.close = close;
    d->act = &d->own;
}

/* grey_key - "addr\0sender\0rcpt", lower-cased */
static size_t grey_key(const fault_conn *fc, const fault_facts *f, char *key, size_t cap)
{
    char addr[64];
    fault_addr_text(&fc->addr, addr, sizeof(addr));
    int n = snprintf(key, cap, "%s%c%s%c%s", addr, 0, f->sender ? f->sender : "", 0, f->rcpt ? f->rcpt : "");
    if (n < 0 || (size_t)n >= cap)
        n = (int)cap - 1;
    for (int i = 0; i < n; i++)
        key[i] = (char)tolower((unsigned char)key[i]);
    return (size_t)n;
}

/* greylisted - 1 when the triple must wait longer; records it the first time */
static int greylisted(fault_conn *fc, const fault_facts *f, uint32_t period_ms, int64_t now, int64_t *left_ms)
{
    char key[700];
    size_t len = grey_key(fc, f, key, sizeof(key));
    grey_entry *g = map_get(&fc->run->greylist, key, len);
    if (g == NULL) {
        g = calloc(1, sizeof(*g));
        if (g == NULL || map_put(&fc->run->greylist, key, len, g) != 0) {
            free(g);
            return 0; /* out of memory: let the mail through rather than defer it forever */
        }
        g->first_ms = now;
        *left_ms = period_ms;
        return 1;
    }
    if (g->passed || now - g->first_ms >= (int64_t)period_ms) {
        g->passed = 1;
        return 0;
    }
    *left_ms = (int64_t)period_ms - (now - g->first_ms);
    return 1;
}

/* -- magic addresses --------------------------------------------------------------------------------------
 */

typedef struct magic_default {
    int code;
    const char *enhanced;
    const char *text;
} magic_default;

/* What a real server says with each code; the stage picks the wording where it matters. */
static const magic_default magic_defaults[] = {
    {421, "4.7.0", "Service not available, closing transmission channel"},
    {450, "4.2.1", "Mailbox unavailable, try again later"},
    {451, "4.3.0", "Local error in processing, try again later"},
    {452, "4.3.1", "Insufficient system storage"},
    {454, "4.7.0", "Temporary failure, try again later"},
    {500, "5.5.2", "Syntax error, command unrecognized"},
    {501, "5.5.4", "Syntax error in parameters or arguments"},
    {503, "5.5.1", "Bad sequence of commands"},
    {530, "5.7.0", "Authentication required"},
    {550, "5.1.1", "Requested action not taken: mailbox unavailable"},
    {551, "5.1.6", "User not local"},
    {552, "5.3.4", "Message size exceeds fixed maximum message size"},
    {553, "5.1.3", "Requested action not taken: mailbox name not allowed"},
    {554, "5.7.1", "Transaction failed"},
};

/* magic_parse - the stage a magic local part names, and the length of its prefix */
static int magic_parse(const char *addr, fault_stage *stage, int *code, char *enhanced, size_t esz)
{
    static const struct {
        const char *prefix;
        fault_stage stage;
    } prefixes[] = {
        {"dataend", FAULT_STAGE_DATA_END},
        {"mail", FAULT_STAGE_MAIL},
        {"rcpt", FAULT_STAGE_RCPT},
        {"data", FAULT_STAGE_DATA},
    };
    char first = (char)tolower((unsigned char)addr[0]);
    if (first != 'm' && first != 'r' && first != 'd')
        return 0; /* most addresses: no magic prefix at all */
    const char *at = strrchr(addr, '@');
    size_t local = at ? (size_t)(at - addr) : strlen(addr);
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i].prefix);
        if (local < n + 3 || strncasecmp(addr, prefixes[i].prefix, n) != 0)
            continue;
        const char *c = addr + n;
        if (!(c[0] >= '4' && c[0] <= '5' && isdigit((unsigned char)c[1]) && isdigit((unsigned char)c[2])))
            return 0;
        const char *rest = c + 3, *end = addr + local;
        *stage = prefixes[i].stage;
        *code = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
        enhanced[0] = '\0';
        if (rest < end && *rest == '_') {
            /* rcpt550_5.1.1: the enhanced status code, class matching the reply's */
            const char *e = rest + 1;
            size_t len = 0;
            while (e + len < end && (isdigit((unsigned char)e[len]) || e[len] == '.'))
                len++;
            int dots = 0;
            for (size_t j = 0; j < len; j++)
                dots += e[j] == '.';
            if (dots == 2 && len >= 5 && len < esz && e[0] == c[0] && e[1] == '.' && e[len - 1] != '.') {
                memcpy(enhanced, e, len);
                enhanced[len] = '\0';
                rest = e + len;
            }
        }
        /* Whatever follows a separator is free text, so addresses can be told apart (rcpt550+a@...). */
        return rest == end || *rest == '+' || *rest == '-' || *rest == '_' || *rest == '.';
    }
    return 0;
}

/* magic_fires - the address's local part names a reply at this stage: make it */
static int magic_fires(const char *addr, fault_stage stage, fault_decision *d)
{
    fault_stage at;
    int code;
    char enhanced[16];
    if (addr == NULL || !magic_parse(addr, &at, &code, enhanced, sizeof(enhanced)) || at != stage)
        return 0;
    const magic_default *def = NULL;
    for (size_t i = 0; i < sizeof(magic_defaults) / sizeof(magic_defaults[0]); i++)
        if (magic_defaults[i].code == code)
            def = &magic_defaults[i];
    const char *text = def ? def->text : "Requested action not taken";
    if (code == 550 && stage == FAULT_STAGE_MAIL)
        text = "Sender address rejected";
    else if (code == 550 && stage == FAULT_STAGE_RCPT)
        text = "Recipient address rejected: User unknown";
    else if (code == 552 && stage == FAULT_STAGE_RCPT)
        text = "Mailbox full";
    char ecode[16];
    if (enhanced[0])
        snprintf(ecode, sizeof(ecode), "%s", enhanced);
    else if (def)
        snprintf(ecode, sizeof(ecode), "%s", def->enhanced);
    else
        snprintf(ecode, sizeof(ecode), "%d.0.0", code / 100);
    char reply[MAGIC_TEXT_MAX];
    snprintf(reply, sizeof(reply), "%d %s %s", code, ecode, text);
    set_reply(d, reply, code == 421 ? FAULT_CLOSE_FIN : FAULT_CLOSE_NONE);
    snprintf(d->why, sizeof(d->why), "magic address %.120s", addr);
    return 1;
}

static int magic_any(const fault_facts *f, fault_stage stage, fault_decision *d)
{
    switch (stage) {
    case FAULT_STAGE_MAIL:
        return magic_fires(f->sender, stage, d);
    case FAULT_STAGE_RCPT:
        return magic_fires(f->rcpt, stage, d);
    case FAULT_STAGE_DATA:
    case FAULT_STAGE_DATA_END:
        if (magic_fires(f->sender, stage, d))
            return 1;
        for (size_t i = 0; i < f->nrcpts; i++)
            if (magic_fires(f->rcpts[i], stage, d))
                return 1;
        return 0;
    default:
        return 0;
    }
}

/* -- decisions ------------------------------------------------------------------------------------------ */

static void fired(fault_conn *fc, fault_stage stage)
{
    fc->run->stats.fired_total++;
    fc->run->stats.fired_by_stage[stage]++;
}

/* limit_fires - a rate limit is passed at this stage */
static int limit_fires(fault_conn *fc, fault_stage stage, int64_t now, fault_decision *d)
{
    const fault_profile *p = fc->run->profile;
    const fault_limit *l = NULL;
    const char *name = NULL;
    if (stage == FAULT_STAGE_CONNECT && p->conns_per_client.max > 0 &&
        fc->concurrent > p->conns_per_client.max) {
        l = &p->conns_per_client;
        name = "connections_per_client";
    } else if (stage == p->msgs_per_conn.at && p->msgs_per_conn.max > 0 &&
               fc->messages >= p->msgs_per_conn.max) {
        l = &p->msgs_per_conn;
        name = "messages_per_connection";
    } else if (stage == p->msgs_per_minute.at && p->msgs_per_minute.max > 0) {
        rate_window *w = NULL;
        if (p->msgs_per_minute.per_server) {
            w = fc->run->server_messages;
        } else {
            unsigned char key[17];
            size_t len = client_key(&fc->addr, key);
            client_state *c = map_get(&fc->run->clients, key, len);
            w = c ? c->messages : NULL;
        }
        if (w != NULL && rate_count(w, now) >= p->msgs_per_minute.max) {
            l = &p->msgs_per_minute;
            name = "messages_per_minute";
        }
    }
    if (l == NULL)
        return 0;
    d->own = l->act;
    if (d->own.reply_code == 421)
        d->own.close = FAULT_CLOSE_FIN;
    d->act = &d->own;
    snprintf(d->why, sizeof(d->why), "limit %s (%u)", name, l->max);
    fc->run->stats.limits++;
    return 1;
}

void fault_decide(fault_conn *fc, fault_stage stage, const fault_facts *f, int64_t now_ms, fault_decision *d)
{
    fault_run *run = fc->run;
    const fault_profile *p = run->profile;
    int64_t t = now_ms - run->start_ms;
    d->act = NULL;
    d->rule = -1;
    d->why[0] = '\0';
    if (!(run->stages & (1u << stage)))
        return;
    for (size_t i = 0; i < p->nrules; i++) {
        const fault_rule *r = &p->rules[i];
        if (r->act.kinds & ((1u << FAULT_ACTION_REFUSE) | (1u << FAULT_ACTION_BLACKHOLE)))
            continue; /* listener rules: fault_run_listener_mode */
        if (!conditions_hold(r, fc, stage, f, t) || !counters_allow(r, i, fc))
            continue;
        if (r->act.greylist_ms > 0) {
            int64_t left;
            if (!greylisted(fc, f, r->act.greylist_ms, now_ms, &left))
                continue; /* waited long enough: behave as if the rule were not there */
            d->own = r->act;
            d->act = &d->own;
            if (r->act.reply == NULL) {
                char text[400];
                long long secs = (left + 999) / 1000;
                snprintf(
                    text, sizeof(text),
                    "450 4.2.0 <%.256s>: Recipient address rejected: Greylisted, try again in %lld second%s",
                    f->rcpt ? f->rcpt : "", secs, secs == 1 ? "" : "s");
                fault_action keep = d->own;
                set_reply(d, text, keep.close);
                d->own.delay_ms = keep.delay_ms;
                d->own.drip_bps = keep.drip_bps;
                d->own.truncate = keep.truncate;
                d->own.kinds |= keep.kinds;
                d->own.greylist_ms = keep.greylist_ms; /* for the transcript: the period */
            }
            run->stats.greylisted++;
        } else {
            d->act = &r->act;
        }
        d->rule = (int)i;
        if (r->per_connection)
            fc->fired[i]++;
        run->fired[i]++;
        if (r->name[0])
            snprintf(d->why, sizeof(d->why), "rule %zu (%s)", i, r->name);
        else
            snprintf(d->why, sizeof(d->why), "rule %zu", i);
        fired(fc, stage);
        return;
    }
    if (limit_fires(fc, stage, now_ms, d)) {
        fired(fc, stage);
        return;
    }
    if (run->magic && magic_any(f, stage, d)) {
        run->stats.magic++;
        fired(fc, stage);
    }
}

int fault_conn_wants(const fault_conn *fc, fault_stage stage)
{
    return (fc->run->stages & (1u << stage)) != 0;
}

int fault_run_listener_mode(const fault_run *r, const char *listener, int64_t now_ms, int64_t *next_change_ms)
{
    const fault_profile *p = r->profile;
    int64_t t = now_ms - r->start_ms, next = INT64_MAX;
    int mode = -1;
    for (size_t i = 0; i < p->nrules; i++) {
        const fault_rule *rule = &p->rules[i];
        int kind = (rule->act.kinds & (1u << FAULT_ACTION_REFUSE))      ? FAULT_ACTION_REFUSE
                   : (rule->act.kinds & (1u << FAULT_ACTION_BLACKHOLE)) ? FAULT_ACTION_BLACKHOLE
                                                                        : -1;
        if (kind < 0)
            continue;
        if (rule->nlisteners > 0) {
            size_t j;
            for (j = 0; j < rule->nlisteners; j++)
                if (strcmp(rule->listeners[j], listener) == 0)
                    break;
            if (j == rule->nlisteners)
                continue;
        }
        /* Window edges still to come decide when to look again. */
        if (rule->after_ms != FAULT_NO_TIME && rule->after_ms > t && r->start_ms + rule->after_ms < next)
            next = r->start_ms + rule->after_ms;
        if (rule->until_ms != FAULT_NO_TIME && rule->until_ms > t && r->start_ms + rule->until_ms < next)
            next = r->start_ms + rule->until_ms;
        int active = (rule->after_ms == FAULT_NO_TIME || t >= rule->after_ms) &&
                     (rule->until_ms == FAULT_NO_TIME || t < rule->until_ms);
        if (active && mode < 0)
            mode = kind;
    }
    *next_change_ms = next;
    return mode;
}

void fault_decision_describe(const fault_decision *d, char *out, size_t outsz)
{
    const fault_action *a = d->act;
    size_t o = 0;
    out[0] = '\0';
    if (a == NULL)
        return;
#define PUT(...)                                                    \
    do {                                                            \
        if (o < outsz)                                              \
            o += (size_t)snprintf(out + o, outsz - o, __VA_ARGS__); \
    } while (0)
/* SEP - between two parts of the description */
#define SEP (o ? ", then " : "")
    if (a->delay_ms)
        PUT("delay %u ms", a->delay_ms);
    if (a->hang)
        PUT("%shang", SEP);
    if (a->reply) {
        size_t first = strcspn(a->reply, "\r");
        PUT("%sreply %.*s%s", SEP, (int)(first > 120 ? 120 : first), a->reply,
            a->reply_len > first + 2 ? " (multi-line)" : "");
    } else if (a->raw) {
        PUT("%ssend %zu raw bytes", SEP, a->raw_len);
    } else if (a->drip_bps || a->truncate) {
        PUT("%snormal reply", SEP);
    }
    if (a->drip_bps)
        PUT(" at %u bytes/s", a->drip_bps);
    if (a->truncate)
        PUT(" cut after %u bytes", a->truncate);
    if (a->discard)
        PUT("%sdiscard the message", SEP);
    if (a->greylist_ms && !a->reply)
        PUT("%sgreylist for %u ms", SEP, a->greylist_ms);
    if (a->tls_alert >= 0)
        PUT("%sTLS alert %s", SEP, fault_tls_alert_name(a->tls_alert));
    if (a->tls_plaintext)
        PUT("%sanswer in plain text", SEP);
    if (a->certificate >= 0)
        PUT("%scertificate %s", o ? ", " : "", fault_cert_name(a->certificate));
    if (a->tls_min >= 0)
        PUT("%sTLS %s-%s only", o ? ", " : "", fault_tls_version_name(a->tls_min),
            fault_tls_version_name(a->tls_max));
    if (a->close != FAULT_CLOSE_NONE || a->truncate)
        PUT("%s%s", SEP, a->close == FAULT_CLOSE_RST ? "reset the connection" : "close the connection");
#undef SEP
    if (o == 0)
        PUT("no change");
#undef PUT
}
