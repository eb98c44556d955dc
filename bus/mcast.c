/* mcast: socket set-up, and sends. The bus thread does all the reading;
 * sends come from any thread (workers send DATA under the bus's send_lock,
 * the bus thread sends control datagrams), and sendto on one UDP socket is
 * safe from several threads: each datagram goes out whole. Buffers are
 * enlarged (best effort) because a burst of repairs or of published batches
 * must not be dropped by our own kernel. */
#include "bus/mcast.h"

#include <linux/filter.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MCAST_BUFFER_BYTES (4 << 20)

static bool
split_host_port(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || colon[1] == '\0' || *end != '\0' || p == 0 || p > 65535)
        return false;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (uint16_t)p;
    return true;
}

bool
mcast_parse_addr(const char *s, struct sockaddr_in *out)
{
    char host[64];
    uint16_t port;
    if (!split_host_port(s, host, sizeof(host), &port))
        return false;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons(port);
    return inet_pton(AF_INET, host, &out->sin_addr) == 1;
}

bool
mcast_resolve_addr(const char *s, struct sockaddr_in *out)
{
    if (mcast_parse_addr(s, out))
        return true;
    char host[256];
    uint16_t port;
    if (!split_host_port(s, host, sizeof(host), &port))
        return false;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return false;
    memcpy(out, res->ai_addr, sizeof(*out));
    out->sin_port = htons(port);
    freeaddrinfo(res);
    return true;
}

bool
mcast_parse_peers(const char *list, struct mcast_endpoints *ep, char *err, size_t errlen)
{
    ep->npeers = 0;
    if (!list || !*list)
        return true;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char one[300];
        if (n == 0 || n >= sizeof(one)) {
            snprintf(err, errlen, "--bus-peers: bad entry in \"%s\"", list);
            return false;
        }
        memcpy(one, p, n);
        one[n] = '\0';
        if (ep->npeers == MCAST_PEERS_MAX) {
            snprintf(err, errlen, "--bus-peers: more than %d peers", MCAST_PEERS_MAX);
            return false;
        }
        if (!mcast_resolve_addr(one, &ep->peers[ep->npeers])) {
            snprintf(err, errlen, "--bus-peers: cannot parse or resolve \"%s\" (HOST:PORT)", one);
            return false;
        }
        ep->npeers++;
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

static int
udp_socket(char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "bus socket: %s", strerror(errno));
        return -1;
    }
    int size = MCAST_BUFFER_BYTES;
    /* Best effort: the kernel caps these at rmem_max/wmem_max. */
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    return fd;
}

static bool
fail(int fd, char *err, size_t errlen, const char *what, const char *arg)
{
    snprintf(err, errlen, "bus %s %s: %s", what, arg ? arg : "", strerror(errno));
    if (fd >= 0)
        close(fd);
    return false;
}

static bool
open_multicast(struct mcast_endpoints *ep, const char *group, const char *iface, int ttl,
               char *err, size_t errlen)
{
    if (!mcast_parse_addr(group, &ep->group) || !IN_MULTICAST(ntohl(ep->group.sin_addr.s_addr))) {
        snprintf(err, errlen, "--bus-group \"%s\": want a multicast ADDR:PORT (224.0.0.0/4)",
                 group);
        return false;
    }
    struct in_addr ifaddr = {.s_addr = htonl(INADDR_ANY)};
    if (iface && *iface && inet_pton(AF_INET, iface, &ifaddr) != 1) {
        snprintf(err, errlen, "--bus-interface \"%s\": want an IPv4 address", iface);
        return false;
    }
    if (ttl < 0 || ttl > 255) {
        snprintf(err, errlen, "--bus-ttl %d: want 0..255", ttl);
        return false;
    }

    int fd = udp_socket(err, errlen);
    if (fd < 0)
        return false;
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        return fail(fd, err, errlen, "reuse", group);
    /* Bound to the group address, so it never receives unicast to the port. */
    if (bind(fd, (struct sockaddr *)&ep->group, sizeof(ep->group)) < 0)
        return fail(fd, err, errlen, "bind", group);
    struct ip_mreq mreq = {.imr_multiaddr = ep->group.sin_addr, .imr_interface = ifaddr};
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0)
        return fail(fd, err, errlen, "join", group);
    (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero));
    ep->group_fd = fd;

    fd = udp_socket(err, errlen);
    if (fd < 0)
        return false;
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr = ifaddr, .sin_port = 0};
    if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0)
        return fail(fd, err, errlen, "bind", iface);
    unsigned char t = (unsigned char)ttl, loop = 1;
    if ((iface && *iface &&
         setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr)) < 0) ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &t, sizeof(t)) < 0 ||
        /* Loop on: other nodes on this host hear us; we drop our own by node id. */
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) < 0)
        return fail(fd, err, errlen, "multicast options", iface);
    ep->fd = fd;
    return true;
}

static bool
open_unicast(struct mcast_endpoints *ep, const char *listen, const char *peers, char *err,
             size_t errlen)
{
    struct sockaddr_in addr;
    if (!mcast_resolve_addr(listen, &addr)) {
        snprintf(err, errlen, "--bus-listen \"%s\": want ADDR:PORT", listen);
        return false;
    }
    if (!mcast_parse_peers(peers, ep, err, errlen))
        return false;
    int fd = udp_socket(err, errlen);
    if (fd < 0)
        return false;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        return fail(fd, err, errlen, "bind", listen);
    ep->fd = fd;
    return true;
}

bool
mcast_open(struct mcast_endpoints *ep, const char *group, const char *iface, int ttl,
           const char *listen, const char *peers, char *err, size_t errlen)
{
    memset(ep, 0, sizeof(*ep));
    ep->group_fd = ep->fd = -1;
    bool have_group = group && *group, have_listen = listen && *listen;
    if (have_group == have_listen) {
        snprintf(err, errlen, "bus: give either --bus-group or --bus-listen (with --bus-peers)");
        return false;
    }
    bool ok;
    if (have_group) {
        ep->multicast = true;
        if (peers && *peers) {
            snprintf(err, errlen, "bus: --bus-peers needs --bus-listen, not --bus-group");
            return false;
        }
        ok = open_multicast(ep, group, iface, ttl, err, errlen);
    } else {
        ok = open_unicast(ep, listen, peers, err, errlen);
    }
    if (!ok)
        mcast_close(ep);
    return ok;
}

bool
mcast_ignore_node(const struct mcast_endpoints *ep, uint32_t node_id, uint64_t epoch)
{
    if (ep->group_fd < 0)
        return false;
    /* Classic BPF. A UDP socket's filter sees the datagram from its 8-byte
     * UDP header on, so the node id (the big-endian word at offset 8 of the
     * bus header, bus/wire.h) sits at 16 and the epoch (two words at 16) at
     * 24. Anything too short to hold them is let through, for the bus thread
     * to count as malformed. */
    enum { UDP_HDR = 8, NODE_AT = UDP_HDR + 8, EPOCH_AT = UDP_HDR + 16 };
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, EPOCH_AT + 8, 0, 7),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NODE_AT),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, node_id, 0, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, EPOCH_AT),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(epoch >> 32), 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, EPOCH_AT + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)epoch, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffff),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    return setsockopt(ep->group_fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0;
}

void
mcast_close(struct mcast_endpoints *ep)
{
    if (ep->group_fd >= 0)
        close(ep->group_fd);
    if (ep->fd >= 0)
        close(ep->fd);
    ep->group_fd = ep->fd = -1;
}

bool
mcast_send_to(const struct mcast_endpoints *ep, const struct sockaddr *to, socklen_t tolen,
              const uint8_t *buf, size_t len)
{
    for (int tries = 0; tries < 3; tries++) {
        ssize_t n = sendto(ep->fd, buf, len, 0, to, tolen);
        if (n == (ssize_t)len)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
    return false;
}

unsigned
mcast_send_all(const struct mcast_endpoints *ep, const uint8_t *buf, size_t len)
{
    if (ep->multicast)
        return mcast_send_to(ep, (const struct sockaddr *)&ep->group, sizeof(ep->group), buf,
                             len) ? 0 : 1;
    unsigned failed = 0;
    for (size_t i = 0; i < ep->npeers; i++)
        if (!mcast_send_to(ep, (const struct sockaddr *)&ep->peers[i], sizeof(ep->peers[i]), buf,
                           len))
            failed++;
    return failed;
}

int
mcast_peer_index(const struct mcast_endpoints *ep, const struct sockaddr *addr, socklen_t len)
{
    if (addr->sa_family != AF_INET || len < (socklen_t)sizeof(struct sockaddr_in))
        return -1;
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    for (size_t i = 0; i < ep->npeers; i++)
        if (ep->peers[i].sin_addr.s_addr == in->sin_addr.s_addr &&
            ep->peers[i].sin_port == in->sin_port)
            return (int)i;
    return -1;
}

void
mcast_format_addr(const struct sockaddr *addr, char *buf, size_t len)
{
    if (addr->sa_family != AF_INET) {
        snprintf(buf, len, "-");
        return;
    }
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
}
