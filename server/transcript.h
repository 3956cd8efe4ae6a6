/*
 * transcript.h - the bounded transcript of one session, for the admin socket (sessions.get).
 *
 * Events are kept as they happen (connect, each command and reply, faults, TLS, close), each with its
 * time; client bytes are kept raw, cut to LOG_TEXT_MAX, and sanitised only when rendered. When the
 * transcript passes its limit the oldest events go first, and are counted. The buffer starts small and
 * grows, so an idle connection costs a few hundred bytes.
 */
#ifndef SMTPFAULT_TRANSCRIPT_H
#define SMTPFAULT_TRANSCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "bytebuf.h"

#define TRANSCRIPT_MAX (32 * 1024) /* bytes kept per session; older events are dropped first */

typedef struct transcript {
    bytebuf buf;      /* records: int64 wall ms, uint16 name length, uint16 text length, name, text */
    uint64_t dropped; /* events dropped to stay within TRANSCRIPT_MAX */
} transcript;

/* transcript_add - one event at wall-clock time ms; events that do not fit push the oldest out */
void transcript_add(transcript *t, int64_t ms, const char *event, const char *text, size_t len);

/* transcript_json - the events as [{"time", "event", "text"}, ...] (text sanitised) */
cJSON *transcript_json(const transcript *t);

/* transcript_move - hand t's events to *to (which must be empty); t is left empty */
void transcript_move(transcript *to, transcript *t);

void transcript_free(transcript *t);

#endif
