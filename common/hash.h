/*
 * hash.h - hashing: SHA-256 (checkpoint identity, download verification),
 * CRC-32C (chunk checksums in the state store) and a fast 64-bit
 * non-cryptographic hash (hash tables, token-block chains).
 *
 * Usage:
 *     struct sha256 h;
 *     sha256_init(&h);
 *     sha256_update(&h, data, n);       // any number of times
 *     uint8_t digest[32];
 *     sha256_final(&h, digest);
 */
#ifndef LODE_COMMON_HASH_H
#define LODE_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t s[8];
    uint64_t n; /* bytes hashed so far */
    uint8_t blk[64];
    int ni; /* the x86 SHA extensions run the rounds (LODE_SHA_SW=1 at sha256_init: never) */
};

void sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *data, size_t n);
void sha256_final(struct sha256 *h, uint8_t out[32]);
/* One-shot; writes 64 lowercase hex digits and a NUL into hex. */
void sha256_hex(const void *data, size_t n, char hex[65]);
/* SHA-1, for git blob ids ("blob <size>\0" + content) only: not for security. */
struct sha1 {
    uint32_t s[5];
    uint64_t n;
    uint8_t blk[64];
};
void sha1_init(struct sha1 *h);
void sha1_update(struct sha1 *h, const void *data, size_t n);
void sha1_final(struct sha1 *h, uint8_t out[20]);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void hash_to_hex(const uint8_t *bytes, size_t n, char *out);

/* CRC-32C (Castagnoli), the iSCSI/ext4 checksum. Pass crc = 0 to start and
 * the previous result to continue over more data. */
uint32_t crc32c(uint32_t crc, const void *data, size_t n);

/* Fast 64-bit hash of n bytes with a seed; stable across machines and runs
 * (little-endian reads), so it may be stored. Not cryptographic. */
uint64_t hash64(const void *data, size_t n, uint64_t seed);

#endif
