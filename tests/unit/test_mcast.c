/* Tests for bus/mcast.c: address parsing, and real sockets on loopback —
 * two endpoints sharing one group port both hear a datagram, unicast mode
 * fans out to its peers. */
#include "bus/mcast.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct addr_case {
    char in[40];
    bool ok;
    char ip[16];
    uint16_t port;
};

ParameterizedTestParameters(mcast, parses_numeric_addresses_strictly)
{
    static struct addr_case cases[] = {
        {"239.255.42.42:11311", true, "239.255.42.42", 11311},
        {"127.0.0.1:1", true, "127.0.0.1", 1},
        {"127.0.0.1:65535", true, "127.0.0.1", 65535},
        {"127.0.0.1:65536", false, "", 0},
        {"127.0.0.1:0", false, "", 0},
        {"127.0.0.1:", false, "", 0},
        {"127.0.0.1", false, "", 0},
        {":11311", false, "", 0},
        {"127.0.0.1:12x", false, "", 0},
        {"127.0.0.1:-5", false, "", 0},
        {"300.0.0.1:5", false, "", 0},
        {"localhost:5", false, "", 0}, /* numeric only */
    };
    return cr_make_param_array(struct addr_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct addr_case *c, mcast, parses_numeric_addresses_strictly)
{
    struct sockaddr_in a;
    bool ok = mcast_parse_addr(c->in, &a);
    cr_assert_eq(ok, c->ok, "%s", c->in);
    if (!ok)
        return;
    char ip[16];
    inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
    cr_assert_str_eq(ip, c->ip);
    cr_assert_eq(ntohs(a.sin_port), c->port);
}

Test(mcast, resolves_names_and_peer_lists)
{
    struct sockaddr_in a;
    cr_assert(mcast_resolve_addr("localhost:7", &a));
    cr_assert_eq(ntohl(a.sin_addr.s_addr), INADDR_LOOPBACK);
    static struct mcast_endpoints ep;
    char err[256];
    cr_assert(mcast_parse_peers("127.0.0.1:1,127.0.0.2:2,localhost:3", &ep, err, sizeof(err)), "%s", err);
    cr_assert_eq(ep.npeers, 3);
    cr_assert_eq(ntohs(ep.peers[2].sin_port), 3);
    cr_assert_not(mcast_parse_peers("127.0.0.1:1,,127.0.0.1:2", &ep, err, sizeof(err)));
    cr_assert_not(mcast_parse_peers("127.0.0.1", &ep, err, sizeof(err)));
    cr_assert(strstr(err, "127.0.0.1") != NULL, "%s", err);
}

static bool
wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

Test(mcast, nodes_sharing_a_group_port_all_hear_a_datagram, .timeout = 10)
{
    static struct mcast_endpoints a, b;
    char err[256];
    char group[40];
    snprintf(group, sizeof(group), "239.255.77.%d:%d", 1 + getpid() % 200, 20000 + getpid() % 20000);
    cr_assert(mcast_open(&a, group, "127.0.0.1", 0, NULL, NULL, err, sizeof(err)), "%s", err);
    cr_assert(mcast_open(&b, group, "127.0.0.1", 0, NULL, NULL, err, sizeof(err)), "%s", err);
    cr_assert_eq(mcast_send_all(&a, (const uint8_t *)"hello", 5), 0);
    char buf[16];
    struct sockaddr_in from;
    socklen_t fromlen = sizeof(from);
    for (int i = 0; i < 2; i++) {
        int fd = i ? b.group_fd : a.group_fd; /* the sender hears itself too */
        cr_assert(wait_readable(fd, 2000));
        ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
        cr_assert_eq(n, 5);
        cr_assert_eq(memcmp(buf, "hello", 5), 0);
    }
    /* The source is a's own unicast socket: replies reach a, not a random node. */
    cr_assert(mcast_send_to(&b, (struct sockaddr *)&from, fromlen, (const uint8_t *)"nack", 4));
    cr_assert(wait_readable(a.fd, 2000));
    cr_assert_eq(recv(a.fd, buf, sizeof(buf), 0), 4);
    cr_assert_not(wait_readable(b.fd, 50));
    mcast_close(&a);
    mcast_close(&b);
}

/* A datagram whose header bytes 8..11 carry node and 16..23 epoch (big-endian). */
static void
fake_header(uint8_t *d, size_t len, uint32_t node, uint64_t epoch)
{
    memset(d, 0, len);
    d[8] = (uint8_t)(node >> 24);
    d[9] = (uint8_t)(node >> 16);
    d[10] = (uint8_t)(node >> 8);
    d[11] = (uint8_t)node;
    for (int i = 0; i < 8; i++)
        d[16 + i] = (uint8_t)(epoch >> (56 - 8 * i));
}

Test(mcast, a_node_filters_its_own_looped_back_datagrams_in_the_kernel, .timeout = 10)
{
    static struct mcast_endpoints a, b;
    char err[256];
    char group[40];
    snprintf(group, sizeof(group), "239.255.78.%d:%d", 1 + getpid() % 200, 20000 + (getpid() + 7) % 20000);
    cr_assert(mcast_open(&a, group, "127.0.0.1", 0, NULL, NULL, err, sizeof(err)), "%s", err);
    cr_assert(mcast_open(&b, group, "127.0.0.1", 0, NULL, NULL, err, sizeof(err)), "%s", err);
    const uint64_t epoch = 0x0102030405060708ull;
    cr_assert(mcast_ignore_node(&a, 0xA1B2C3D4, epoch));
    uint8_t mine[40], twin[40], other[40];
    fake_header(mine, sizeof(mine), 0xA1B2C3D4, epoch);
    fake_header(twin, sizeof(twin), 0xA1B2C3D4, epoch + 1);  /* our id, another node */
    fake_header(other, sizeof(other), 0x01020304, epoch);
    cr_assert_eq(mcast_send_all(&a, mine, sizeof(mine)), 0);
    cr_assert_eq(mcast_send_all(&a, (const uint8_t *)"tiny", 4), 0);
    cr_assert_eq(mcast_send_all(&a, twin, sizeof(twin)), 0);
    cr_assert_eq(mcast_send_all(&a, other, sizeof(other)), 0);
    uint8_t buf[64];
    /* b hears all four; a only what does not name its id and epoch, short
     * ones included (the bus thread must see those to count them as
     * malformed), and a twin with its id (to say so). */
    for (int i = 0; i < 4; i++) {
        cr_assert(wait_readable(b.group_fd, 2000));
        cr_assert_gt(recv(b.group_fd, buf, sizeof(buf), 0), 0);
    }
    cr_assert(wait_readable(a.group_fd, 2000));
    cr_assert_eq(recv(a.group_fd, buf, sizeof(buf), 0), 4);
    cr_assert(wait_readable(a.group_fd, 2000));
    cr_assert_eq(recv(a.group_fd, buf, sizeof(buf), 0), (ssize_t)sizeof(twin));
    cr_assert_eq(memcmp(buf, twin, sizeof(twin)), 0);
    cr_assert(wait_readable(a.group_fd, 2000));
    cr_assert_eq(recv(a.group_fd, buf, sizeof(buf), 0), (ssize_t)sizeof(other));
    cr_assert_eq(memcmp(buf, other, sizeof(other)), 0);
    /* Delivery on one socket is in order: "other" came after "mine", so the
     * filter, not a slow kernel, kept "mine" out. */
    cr_assert_not(wait_readable(a.group_fd, 0));
    mcast_close(&a);
    mcast_close(&b);
}

Test(mcast, unicast_mode_sends_to_every_peer, .timeout = 10)
{
    int r1 = socket(AF_INET, SOCK_DGRAM, 0), r2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(r1, (struct sockaddr *)&any, sizeof(any)), 0);
    cr_assert_eq(bind(r2, (struct sockaddr *)&any, sizeof(any)), 0);
    struct sockaddr_in a1, a2;
    socklen_t l = sizeof(a1);
    getsockname(r1, (struct sockaddr *)&a1, &l);
    l = sizeof(a2);
    getsockname(r2, (struct sockaddr *)&a2, &l);
    char peers[64];
    snprintf(peers, sizeof(peers), "127.0.0.1:%d,127.0.0.1:%d", ntohs(a1.sin_port), ntohs(a2.sin_port));
    static struct mcast_endpoints ep;
    char err[256];
    cr_assert(mcast_open(&ep, NULL, NULL, 1, "127.0.0.1:0", peers, err, sizeof(err)) == false);
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", 40000 + getpid() % 20000);
    cr_assert(mcast_open(&ep, NULL, NULL, 1, listen, peers, err, sizeof(err)), "%s", err);
    cr_assert_eq(ep.group_fd, -1);
    cr_assert_eq(mcast_send_all(&ep, (const uint8_t *)"x", 1), 0);
    char buf[4];
    cr_assert(wait_readable(r1, 2000));
    cr_assert_eq(recv(r1, buf, sizeof(buf), 0), 1);
    cr_assert(wait_readable(r2, 2000));
    cr_assert_eq(recv(r2, buf, sizeof(buf), 0), 1);
    mcast_close(&ep);
    close(r1);
    close(r2);
}

Test(mcast, refuses_bad_configurations_with_a_reason)
{
    static struct mcast_endpoints ep;
    char err[256];
    cr_assert_not(mcast_open(&ep, NULL, NULL, 1, NULL, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "--bus-group") != NULL);
    cr_assert_not(mcast_open(&ep, "239.1.1.1:5000", NULL, 1, "127.0.0.1:5000", NULL, err, sizeof(err)));
    cr_assert_not(mcast_open(&ep, "10.1.1.1:5000", NULL, 1, NULL, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "multicast") != NULL, "%s", err);
    cr_assert_not(mcast_open(&ep, "239.1.1.1:5000", "eth0", 1, NULL, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "--bus-interface") != NULL, "%s", err);
    cr_assert_not(mcast_open(&ep, "239.1.1.1:5000", NULL, 256, NULL, NULL, err, sizeof(err)));
    cr_assert_not(mcast_open(&ep, "239.1.1.1:5000", NULL, 1, NULL, "127.0.0.1:5", err, sizeof(err)));
    cr_assert_eq(ep.fd, -1);
    cr_assert_eq(ep.group_fd, -1);
}

Test(mcast, formats_addresses)
{
    struct sockaddr_in a;
    cr_assert(mcast_parse_addr("10.0.0.7:1234", &a));
    char buf[32];
    mcast_format_addr((struct sockaddr *)&a, buf, sizeof(buf));
    cr_assert_str_eq(buf, "10.0.0.7:1234");
}
