/* binary: memcached's binary protocol (deprecated in memcached 1.6, still
 * spoken by 1.6.18 and by clients such as memjs, spymemcached, libmemcached
 * in binary mode). A connection is binary when its first byte is the
 * request magic 0x80 (memcached's -B auto); the text path never reaches
 * this file. Requests are parsed from the connection's read buffer, run
 * through the same cache calls and bus publishing as their text twins, and
 * answered with memcached's status codes and error bodies, batched into the
 * connection's one writev; values go out straight from item memory.
 *
 * Request and response header (24 bytes, network byte order):
 *
 *   0 magic | 1 opcode | 2-3 key length | 4 extras length | 5 data type
 *   6-7 vbucket (request) / status (response) | 8-11 total body length
 *   12-15 opaque (echoed) | 16-23 CAS
 *   then: extras, key, value (body length = extras + key + value)
 */
#ifndef FLEETCACHE_NET_BINARY_H
#define FLEETCACHE_NET_BINARY_H

#include <stdbool.h>

struct conn;

#define BIN_REQ_MAGIC 0x80
#define BIN_HEADER_LEN 24

enum bin_status {
    BIN_DONE,       /* one request consumed (its reply queued, or a value to read) */
    BIN_NEED_MORE,  /* the header, extras and key are not all in yet */
    BIN_CLOSE,      /* not a binary request: close without a word */
};

/* Parses and runs the request at the head of c's read buffer. May switch c
 * to CONN_NREAD (a value follows) or CONN_SWALLOW, or set
 * c->close_after_write. */
enum bin_status
bin_process(struct conn *c);

/* The value of the pending binary store arrived in c->nread_it: stores,
 * replies, publishes, releases. */
void
bin_complete_nread(struct conn *c);

#endif
