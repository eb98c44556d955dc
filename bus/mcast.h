/* mcast: the bus's sockets, IPv4. Multicast mode: one socket bound to the
 * group address and port (shared by every node on the host:
 * SO_REUSEADDR/SO_REUSEPORT) that only receives the group, and one socket
 * on an ephemeral port of the interface that sends to the group (a socket
 * bound to a group address cannot be a source). The fleet answers on the
 * group too, so what reaches the sending socket comes from outside the
 * fleet and is dropped (bus/receive.c). Unicast mode: one socket bound to
 * --bus-listen, sending to each peer and hearing only them. */
#ifndef FLEETCACHE_BUS_MCAST_H
#define FLEETCACHE_BUS_MCAST_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MCAST_PEERS_MAX 64

struct mcast_endpoints {
    bool multicast;
    struct sockaddr_in group;           /* multicast destination */
    struct sockaddr_in peers[MCAST_PEERS_MAX];
    size_t npeers;
    int group_fd;                       /* multicast receive; -1 in unicast mode */
    int fd;                             /* sends; receives unicast */
};

/* Parses "A.B.C.D:PORT" (numeric only) into out. */
bool
mcast_parse_addr(const char *s, struct sockaddr_in *out);

/* Parses "HOST:PORT", resolving HOST to IPv4 if it is not numeric. */
bool
mcast_resolve_addr(const char *s, struct sockaddr_in *out);

/* Parses a comma-separated HOST:PORT list into ep->peers. */
bool
mcast_parse_peers(const char *list, struct mcast_endpoints *ep, char *err, size_t errlen);

/* Opens the sockets: multicast when group is set (iface may be NULL: the
 * kernel's choice; ttl 0 keeps datagrams on this host), else unicast on
 * listen with peers. Non-blocking. False with a reason in err. */
bool
mcast_open(struct mcast_endpoints *ep, const char *group, const char *iface, int ttl,
           const char *listen, const char *peers, char *err, size_t errlen);

void
mcast_close(struct mcast_endpoints *ep);

/* Asks the kernel to drop, on the group socket, datagrams whose header names
 * node_id and epoch (our own, looped back): they would only wake the bus
 * thread to be thrown away. Another node using our id has another epoch and
 * gets through, so the bus thread can say so. Best effort: false if the
 * filter cannot be attached, and the bus thread then ignores them itself. */
bool
mcast_ignore_node(const struct mcast_endpoints *ep, uint32_t node_id, uint64_t epoch);

/* Sends to the group, or to every peer. Returns how many sends failed. */
unsigned
mcast_send_all(const struct mcast_endpoints *ep, const uint8_t *buf, size_t len);

/* Sends to one address. False on failure (a full socket buffer included). */
bool
mcast_send_to(const struct mcast_endpoints *ep, const struct sockaddr *to, socklen_t tolen,
              const uint8_t *buf, size_t len);

/* Unicast mode: the index in ep->peers of the peer at addr (address and
 * port), or -1: a stranger. */
int
mcast_peer_index(const struct mcast_endpoints *ep, const struct sockaddr *addr, socklen_t len);

/* Formats addr as "A.B.C.D:PORT" into buf. */
void
mcast_format_addr(const struct sockaddr *addr, char *buf, size_t len);

#endif
