/* crypto: the bus's shared key and the sealing of datagrams with libsodium's
 * XChaCha20-Poly1305-IETF (header as associated data, nonce from the header;
 * see wire.h). Without a key, datagrams go out in the clear and are accepted
 * only in the clear: a node never mixes the two. */
#ifndef FLEETCACHE_BUS_CRYPTO_H
#define FLEETCACHE_BUS_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/wire.h"

#define BUS_KEY_SIZE 32
/* How to make a key file, with nothing but coreutils (said in messages). */
#define BUS_KEY_RECIPE "(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > bus.key)"

/* Initialises libsodium; false if it cannot be (no usable RNG). */
bool
bus_crypto_setup(void);

/* Parses a key from the contents of a key file: exactly 32 raw bytes, or 64
 * hex digits with optional surrounding whitespace (BUS_KEY_RECIPE, or
 * `openssl rand -hex 32`).
 * Returns false for anything else. */
bool
bus_crypto_parse_key(const uint8_t *text, size_t len, uint8_t key[BUS_KEY_SIZE]);

/* Reads and parses the key file at path. False with a reason in err when the
 * file cannot be read or does not hold a key. */
bool
bus_crypto_load_key(const char *path, uint8_t key[BUS_KEY_SIZE], char *err, size_t errlen);

/* Builds a whole datagram into out (cap bytes): h->plen and the sealed flag
 * are set here, the header is written, then the payload, sealed when key is
 * not NULL. Returns the datagram length, or 0 if it does not fit. */
size_t
bus_crypto_frame(const uint8_t *key, struct wire_header *h, const uint8_t *payload,
                 size_t plen, uint8_t *out, size_t cap);

/* Authenticates a datagram whose header decoded as h. With a key, it must be
 * sealed and verify; the plaintext goes to plain (WIRE_PAYLOAD_MAX bytes).
 * Without a key, it must not be sealed. On success *payload points at the
 * plaintext (plain, or inside dgram). False: drop it and count an auth failure. */
bool
bus_crypto_open(const uint8_t *key, const struct wire_header *h, const uint8_t *dgram,
                size_t len, uint8_t *plain, const uint8_t **payload);

#endif
