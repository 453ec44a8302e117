/*
 * block-events.c - the event sink of the block layer (see block-events.h).
 * Invariant: every event's data reference is released exactly once, by
 * the sink or here.
 */
#include "block/block-events.h"

static BlockEventSink *event_sink;

void block_event_set_sink(BlockEventSink *fn)
{
    event_sink = fn;
}

void block_event_emit(const char *name, json_t *data)
{
    if (event_sink) {
        event_sink(name, data);
    } else {
        json_decref(data);
    }
}
