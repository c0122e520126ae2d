/*
 * sdnotify.h: what systemd hears from the daemon (sd_notify): STATUS
 * lines for the connection and the role, and WATCHDOG=1 while healthy.
 *
 * Healthy means: the main loop (or a start-up scan) is making progress,
 * and the main NATS connection is up, or has been down (nats.c
 * reconnecting) for less than nats_down_grace seconds (0: any time). A
 * closed connection, which nats.c does not reopen, is not healthy. When
 * the daemon stops being healthy the pings stop and systemd, with
 * WatchdogSec= set, restarts it.
 */
#ifndef CIM_DAEMON_SDNOTIFY_H
#define CIM_DAEMON_SDNOTIFY_H

#include <stdbool.h>

struct daemon;

/* Reads the watchdog interval systemd gave (sd_watchdog_enabled). */
void notify_init(void);
/* From the main loop, every tick: STATUS when the connection or the role
 * changed, and a watchdog ping when one is due and the daemon is healthy.
 * Returns whether it is healthy. */
bool notify_tick(struct daemon *d);
/* From a long step of the main thread (the start-up scan): a ping when
 * one is due, as the step is progress. Safe from any thread. */
void notify_progress(void);

#endif
