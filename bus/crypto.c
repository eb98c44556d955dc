/* crypto: key files and AEAD framing. Sealing is deterministic for a given
 * (header, payload), so resending a ring entry byte for byte never reuses a
 * nonce with different contents. */
#include "bus/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/log.h"

bool
bus_crypto_setup(void)
{
    return sodium_init() >= 0;
}

static bool
is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool
bus_crypto_parse_key(const uint8_t *text, size_t len, uint8_t key[BUS_KEY_SIZE])
{
    size_t start = 0, end = len;
    while (start < end && is_space(text[start]))
        start++;
    while (end > start && is_space(text[end - 1]))
        end--;
    if (end - start == 2 * BUS_KEY_SIZE) {
        bool hex = true;
        for (size_t i = 0; i < BUS_KEY_SIZE && hex; i++) {
            int hi = hex_value(text[start + 2 * i]);
            int lo = hex_value(text[start + 2 * i + 1]);
            if (hi < 0 || lo < 0)
                hex = false;
            else
                key[i] = (uint8_t)(hi << 4 | lo);
        }
        if (hex)
            return true;
    }
    /* Raw keys are taken whole: trimming whitespace would corrupt them. */
    if (len == BUS_KEY_SIZE) {
        memcpy(key, text, BUS_KEY_SIZE);
        return true;
    }
    return false;
}

bool
bus_crypto_load_key(const char *path, uint8_t key[BUS_KEY_SIZE], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "bus key file %s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        log_error("bus key file %s is readable by others: chmod 600 it", path);
    /* Bounded read: a key file is tiny; anything longer is not a key. */
    uint8_t buf[256];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "bus key file %s: %s", path, strerror(errno));
            close(fd);
            return false;
        }
        if (n == 0 || (got += (size_t)n) == sizeof(buf))
            break;
    }
    close(fd);
    bool ok = got < sizeof(buf) && bus_crypto_parse_key(buf, got, key);
    sodium_memzero(buf, sizeof(buf));
    if (!ok)
        snprintf(err, errlen,
                 "bus key file %s: expected 64 hex digits or 32 raw bytes; make one with "
                 BUS_KEY_RECIPE,
                 path);
    return ok;
}

size_t
bus_crypto_frame(const uint8_t *key, struct wire_header *h, const uint8_t *payload,
                 size_t plen, uint8_t *out, size_t cap)
{
    size_t total = WIRE_HEADER_SIZE + plen + (key ? WIRE_TAG_SIZE : 0);
    if (plen > WIRE_PAYLOAD_MAX || total > cap)
        return 0;
    h->plen = (uint16_t)plen;
    h->flags = key ? WIRE_FLAG_SEALED : 0;
    wire_header_encode(h, out);
    if (!key) {
        if (plen)
            memcpy(out + WIRE_HEADER_SIZE, payload, plen);
        return total;
    }
    uint8_t nonce[WIRE_NONCE_SIZE];
    wire_nonce(h, nonce);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + WIRE_HEADER_SIZE, &clen, payload, plen,
                                               out, WIRE_HEADER_SIZE, NULL, nonce, key);
    return WIRE_HEADER_SIZE + (size_t)clen;
}

bool
bus_crypto_open(const uint8_t *key, const struct wire_header *h, const uint8_t *dgram,
                size_t len, uint8_t *plain, const uint8_t **payload)
{
    bool sealed = (h->flags & WIRE_FLAG_SEALED) != 0;
    if (!key) {
        if (sealed)
            return false;
        *payload = dgram + WIRE_HEADER_SIZE;
        return true;
    }
    if (!sealed || len < WIRE_HEADER_SIZE + WIRE_TAG_SIZE)
        return false;
    uint8_t nonce[WIRE_NONCE_SIZE];
    wire_nonce(h, nonce);
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &mlen, NULL, dgram + WIRE_HEADER_SIZE,
                                                   len - WIRE_HEADER_SIZE, dgram,
                                                   WIRE_HEADER_SIZE, nonce, key) != 0)
        return false;
    if (mlen != h->plen)
        return false;
    *payload = plain;
    return true;
}
