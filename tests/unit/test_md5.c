/* Tests for l2/md5.c: the RFC 1321 test suite and block-boundary lengths. */
#include "l2/md5.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static void
hex(const uint8_t d[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void
check(const char *in, size_t len, const char *want)
{
    uint8_t d[16];
    char got[33];
    md5_digest(in, len, d);
    hex(d, got);
    cr_expect_str_eq(got, want, "md5 of %zu bytes", len);
}

Test(md5, matches_the_rfc_1321_test_suite)
{
    check("", 0, "d41d8cd98f00b204e9800998ecf8427e");
    check("a", 1, "0cc175b9c0f1b6a831c399e269772661");
    check("abc", 3, "900150983cd24fb0d6963f7d28e17f72");
    check("message digest", 14, "f96b697d7cb7938d525a2f31aaf161d0");
    check("abcdefghijklmnopqrstuvwxyz", 26, "c3fcd3d76192e4007dfb496cca67e13b");
    const char *alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    check(alnum, strlen(alnum), "d174ab98d277d9f5a5611c2c9f419d9f");
    const char *digits = "1234567890123456789012345678901234567890"
                         "1234567890123456789012345678901234567890";
    check(digits, strlen(digits), "57edf4a22be3c955ac49da2e2107b67a");
}

Test(md5, pads_correctly_around_the_block_boundaries)
{
    /* 55, 56 and 64 bytes: one tail block, two tail blocks, a whole block. */
    char buf[64];
    memset(buf, 'x', sizeof(buf));
    check(buf, 55, "04364420e25c512fd958a70738aa8f72");
    check(buf, 56, "668a72d5ba17f08e62dabcafad6db14b");
    check(buf, 64, "c1bb4f81d892b2d57947682aeb252456");
}
