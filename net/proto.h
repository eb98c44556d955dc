/* proto: the memcached text protocol's lexical layer. Turns the bytes at the
 * head of a connection's buffer into one request line split into tokens the
 * way memcached 1.6 splits them (single spaces, runs of spaces collapse, at
 * most PROTO_MAX_TOKENS - 1 real tokens per pass). Tokens are views into the
 * caller's buffer; nothing is copied and nothing past len is ever read. */
#ifndef FLEETCACHE_NET_PROTO_H
#define FLEETCACHE_NET_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* memcached's MAX_TOKENS: 23 real tokens plus the terminal one. */
#define PROTO_MAX_TOKENS 24
/* A line without '\n' longer than this is junk unless it is a get/gets. */
#define PROTO_JUNK_LINE 2048
/* Leading spaces tolerated before a long get line (memcached's bound). */
#define PROTO_MAX_LEADING_SPACES 100

enum proto_status {
    PROTO_OK = 0,       /* one complete line parsed into the request */
    PROTO_NEED_MORE,    /* no complete line yet; read more and call again */
    PROTO_JUNK,         /* long line without newline that is no get: close */
};

struct proto_token {
    const char *p;
    size_t len;
};

struct proto_request {
    size_t consumed;        /* bytes of the line including its '\n' */
    const char *line;       /* the command text (without "\r\n"), cut at a NUL */
    size_t line_len;
    /* Tokens in memcached's numbering: ntokens counts the terminal token,
     * so "get a" has ntokens 3. tokens[ntokens - 1] is the terminal: its p
     * is NULL when the whole line was tokenized, else the untokenized rest
     * (rest/rest_len below); its len is always 0. */
    struct proto_token tokens[PROTO_MAX_TOKENS];
    size_t ntokens;
    const char *rest;
    size_t rest_len;
};

/* Looks for one complete line in buf[0, len). On PROTO_OK fills req (views
 * into buf). An unterminated line longer than PROTO_JUNK_LINE is PROTO_JUNK
 * unless it is a get/gets (a long multiget): then PROTO_NEED_MORE, and the
 * caller bounds how far it lets the buffer grow. */
enum proto_status
proto_parse_line(const char *buf, size_t len, struct proto_request *req);

/* Splits s[0, len) into req->tokens as memcached's tokenize_command does
 * (used again on req->rest to continue a long multiget). Returns ntokens,
 * the terminal token included. */
size_t
proto_tokenize(struct proto_request *req, const char *s, size_t len);

/* True when the token equals the NUL-terminated word. */
bool
proto_token_is(const struct proto_token *t, const char *word);

/* Number parsing with memcached's safe_strto* semantics (strtoul family on
 * a 64-bit long: leading blanks and a sign accepted, the token must end or be
 * followed by a blank; values wrap to the target width exactly as memcached
 * stores them). False where memcached refuses. */
bool
proto_parse_u32(const struct proto_token *t, uint32_t *out);
bool
proto_parse_i32(const struct proto_token *t, int32_t *out);
bool
proto_parse_u64(const struct proto_token *t, uint64_t *out);

#endif
