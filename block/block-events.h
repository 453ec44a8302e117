/*
 * block-events.h - the one way the block layer reports QMP events.
 *
 * libxblk does not link the generated QAPI code, so block/ hands each
 * event (QEMU's name and its "data" object) to a sink the program
 * installs: xblk-system passes the monitor's qapi_event_emit(); tests
 * install a recorder.  Without a sink events are dropped.  Main loop
 * thread only.
 */
#ifndef XBLK_BLOCK_BLOCK_EVENTS_H
#define XBLK_BLOCK_BLOCK_EVENTS_H

#include <jansson.h>

typedef void BlockEventSink(const char *name, json_t *data);

/* Consumes data (one reference); NULL data means an event without one. */
void block_event_emit(const char *name, json_t *data);
/* Installs fn (NULL: drop events).  fn consumes the data it gets. */
void block_event_set_sink(BlockEventSink *fn);

#endif
