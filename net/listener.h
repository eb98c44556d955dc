/* listener: the listening sockets (TCP per -l/-p, or the -s unix socket)
 * and the acceptor on the main loop. Accepted sockets go round-robin to the
 * workers; past -c the newcomer is told "ERROR Too many open connections"
 * and closed, as memcached's maxconns_fast does. */
#ifndef FLEETCACHE_NET_LISTENER_H
#define FLEETCACHE_NET_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include "net/conn.h"

/* Binds and listens on every configured address. False with a reason. */
bool
listener_open(struct net_shared *sh, char *err, size_t errlen);

/* Starts accepting on loop. */
void
listener_start(struct ev_loop *loop);

/* Stops accepting and closes the listening sockets (unlinks -s). */
void
listener_close(void);

/* First bound TCP port, or 0. */
int
listener_port(void);

/* Hands an accepted socket to a worker (net.c). */
void
net_dispatch(int fd, const char *listen_name);

#endif
