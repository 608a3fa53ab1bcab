/* hash.c - SHA-256 and SHA-1 (FIPS 180-4), CRC-32C and hash64 (see hash.h). */
#include "common/hash.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- SHA-256 */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t ror32(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

static void sha256_block(uint32_t s[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha_k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s[0] += a, s[1] += b, s[2] += c, s[3] += d, s[4] += e, s[5] += f, s[6] += g, s[7] += h;
}

static int sha_use_ni(void);

void sha256_init(struct sha256 *h)
{
    static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    memcpy(h->s, iv, sizeof iv);
    h->n = 0;
    h->ni = sha_use_ni();
}

/* The Merkle-Damgard buffering both hashes share: whole 64-byte blocks go to
 * `block`, a partial one waits in blk. */
static void md_update(void *st, uint8_t blk[64], uint64_t *count, const void *data, size_t n,
                      void (*block)(void *st, const uint8_t *p, size_t nblk))
{
    const uint8_t *p = data;
    size_t used = (size_t)(*count % 64);
    *count += n;
    if (used) {
        size_t take = 64 - used < n ? 64 - used : n;
        memcpy(blk + used, p, take);
        p += take, n -= take;
        if (used + take < 64)
            return;
        block(st, blk, 1);
    }
    if (n >= 64) {
        block(st, p, n / 64);
        p += n / 64 * 64, n %= 64;
    }
    memcpy(blk, p, n);
}

/* Appends the padding and the big-endian bit count (the same for both hashes). */
static void md_pad(void *h, uint64_t count, void (*update)(void *h, const void *d, size_t n))
{
    uint8_t pad[72] = { 0x80 };
    uint64_t bits = count * 8;
    size_t used = (size_t)(count % 64), padn = used < 56 ? 56 - used : 120 - used;
    for (int i = 0; i < 8; i++)
        pad[padn + i] = (uint8_t)(bits >> (56 - 8 * i));
    update(h, pad, padn + 8);
}

static void sha256_block_v(void *st, const uint8_t *p, size_t nblk)
{
    for (size_t i = 0; i < nblk; i++)
        sha256_block(st, p + 64 * i);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define SHA_NI 1

/* The SHA extensions (Intel since Goldmont/Ice Lake, AMD since Zen) run the rounds in
 * hardware, several times the portable code: every cache entry written is hashed. The state
 * lives as ABEF and CDGH lanes; each step below does four rounds, and from the second step on
 * the message schedule for the steps ahead (msg1 three steps ahead, msg2 one step ahead). */
__attribute__((target("sha,sse4.1,ssse3"))) static void sha256_block_ni(void *st, const uint8_t *p,
                                                                        size_t nblk)
{
    uint32_t *s = st;
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bull, 0x0405060700010203ull);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[0]), 0xb1); /* CDAB */
    __m128i st1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[4]), 0x1b); /* EFGH */
    __m128i st0 = _mm_alignr_epi8(tmp, st1, 8);                                     /* ABEF */
    st1 = _mm_blend_epi16(st1, tmp, 0xf0);                                          /* CDGH */
    for (; nblk; nblk--, p += 64) {
        __m128i abef = st0, cdgh = st1, m[4];
        for (int i = 0; i < 16; i++) {
            if (i < 4)
                m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), mask);
            __m128i msg = _mm_add_epi32(m[i % 4], _mm_loadu_si128((const __m128i *)&sha_k[4 * i]));
            st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
            if (i >= 3 && i <= 14) {
                __m128i t = _mm_alignr_epi8(m[i % 4], m[(i + 3) % 4], 4);
                m[(i + 1) % 4] = _mm_sha256msg2_epu32(_mm_add_epi32(m[(i + 1) % 4], t), m[i % 4]);
            }
            st0 = _mm_sha256rnds2_epu32(st0, st1, _mm_shuffle_epi32(msg, 0x0e));
            if (i >= 1 && i <= 12)
                m[(i + 3) % 4] = _mm_sha256msg1_epu32(m[(i + 3) % 4], m[i % 4]);
        }
        st0 = _mm_add_epi32(st0, abef);
        st1 = _mm_add_epi32(st1, cdgh);
    }
    tmp = _mm_shuffle_epi32(st0, 0x1b);    /* FEBA */
    st1 = _mm_shuffle_epi32(st1, 0xb1);    /* DCHG */
    st0 = _mm_blend_epi16(tmp, st1, 0xf0); /* DCBA */
    st1 = _mm_alignr_epi8(st1, tmp, 8);    /* HGFE */
    _mm_storeu_si128((__m128i *)&s[0], st0);
    _mm_storeu_si128((__m128i *)&s[4], st1);
}

/* 1 when the CPU has the SHA extensions (CPUID leaf 7, EBX bit 29) and SSE4.1. */
static int sha_ni_cpu(void)
{
    static int have = -1;
    int v = __atomic_load_n(&have, __ATOMIC_RELAXED);
    if (v < 0) {
        unsigned a, b, c, d;
        v = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 29 & 1) &&
            __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("ssse3");
        __atomic_store_n(&have, v, __ATOMIC_RELAXED);
    }
    return v;
}
#endif

/* Decided per hash, so LODE_SHA_SW=1 (the portable rounds) can be set by a test at any time. */
static int sha_use_ni(void)
{
#ifdef SHA_NI
    const char *e = getenv("LODE_SHA_SW");
    return sha_ni_cpu() && !(e && *e == '1');
#else
    return 0;
#endif
}

void sha256_update(struct sha256 *h, const void *data, size_t n)
{
#ifdef SHA_NI
    if (h->ni) {
        md_update(h->s, h->blk, &h->n, data, n, sha256_block_ni);
        return;
    }
#endif
    md_update(h->s, h->blk, &h->n, data, n, sha256_block_v);
}

static void sha256_update_v(void *h, const void *d, size_t n) { sha256_update(h, d, n); }

void sha256_final(struct sha256 *h, uint8_t out[32])
{
    md_pad(h, h->n, sha256_update_v);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h->s[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h->s[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h->s[i] >> 8);
        out[4 * i + 3] = (uint8_t)h->s[i];
    }
}

/* ---------------------------------------------------------------- SHA-1 */

static inline uint32_t rol32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static void sha1_block1(uint32_t *s, const uint8_t *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5a827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ed9eba1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
        else
            f = b ^ c ^ d, k = 0xca62c1d6;
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol32(b, 30), b = a, a = t;
    }
    s[0] += a, s[1] += b, s[2] += c, s[3] += d, s[4] += e;
}

static void sha1_block(void *st, const uint8_t *p, size_t nblk)
{
    for (size_t i = 0; i < nblk; i++)
        sha1_block1(st, p + 64 * i);
}

void sha1_init(struct sha1 *h)
{
    static const uint32_t iv[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
    memcpy(h->s, iv, sizeof iv);
    h->n = 0;
}

void sha1_update(struct sha1 *h, const void *data, size_t n)
{
    md_update(h->s, h->blk, &h->n, data, n, sha1_block);
}

static void sha1_update_v(void *h, const void *d, size_t n) { sha1_update(h, d, n); }

void sha1_final(struct sha1 *h, uint8_t out[20])
{
    md_pad(h, h->n, sha1_update_v);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(h->s[i] >> (24 - 8 * j));
}

void hash_to_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * n] = 0;
}

void sha256_hex(const void *data, size_t n, char hex[65])
{
    struct sha256 h;
    uint8_t d[32];
    sha256_init(&h);
    sha256_update(&h, data, n);
    sha256_final(&h, d);
    hash_to_hex(d, 32, hex);
}

/* ---------------------------------------------------------------- CRC-32C */

static uint32_t crc_tab[8][256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
    __atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define CRC_HW 1

/* The CRC register is linear, so crc(A | B) = crc(A) * x^(8 |B|) ^ crc_B(from 0) in GF(2)[x]
 * mod P (bit-reflected). multmodp is that product (zlib's formulation, CRC-32C polynomial). */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
    uint32_t m = 1u << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0)
                break;
        }
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ 0x82f63b78u : b >> 1;
    }
    return p;
}

/* x^(8 n) mod P for n bytes (square-and-multiply; only used to build crc_shift). */
static uint32_t xpow8n(uint64_t n)
{
    uint32_t r = 1u << 31, sq = 1u << 23; /* x^0 and x^8, reflected */
    for (; n; n >>= 1) {
        if (n & 1)
            r = multmodp(sq, r);
        sq = multmodp(sq, sq);
    }
    return r;
}

/* Stream lengths of the interleaved loop: 3 x 32 KiB down to 3 x 1 KiB (below that the two
 * combining products, ~100 cycles each, cost more than the interleaving saves). */
#define CRC_LMAX 32768
#define CRC_LMIN 1024
#define CRC_NL 6
static uint32_t crc_shift[CRC_NL]; /* x^(8 L) mod P for L = CRC_LMAX >> i */
static int crc_shift_ready;

static void crc_shift_init(void)
{
    for (int i = 0; i < CRC_NL; i++)
        crc_shift[i] = xpow8n(CRC_LMAX >> i);
    /* two threads computing the same constants is harmless */
    __atomic_store_n(&crc_shift_ready, 1, __ATOMIC_RELEASE);
}

/* SSE4.2's crc32 instruction computes exactly CRC-32C, 8 bytes per instruction, but each one
 * waits for the previous result (3 cycles of latency, 1 per cycle throughput). Three
 * independent streams over thirds of a block keep the unit busy (about 3x a single stream);
 * their registers are then shifted into place and combined, so the result is the ordinary
 * CRC-32C (stored checksums do not change). */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
                                                            size_t n)
{
    uint64_t c = crc;
    if (n >= 3 * CRC_LMIN) {
        if (!__atomic_load_n(&crc_shift_ready, __ATOMIC_ACQUIRE))
            crc_shift_init();
        for (int i = 0; i < CRC_NL; i++) {
            size_t L = (size_t)CRC_LMAX >> i;
            while (n >= 3 * L) {
                uint64_t c1 = 0, c2 = 0;
                const uint8_t *q = p + L, *r = p + 2 * L;
                for (size_t k = 0; k < L; k += 8) {
                    uint64_t v0, v1, v2;
                    memcpy(&v0, p + k, 8);
                    memcpy(&v1, q + k, 8);
                    memcpy(&v2, r + k, 8);
                    c = _mm_crc32_u64(c, v0);
                    c1 = _mm_crc32_u64(c1, v1);
                    c2 = _mm_crc32_u64(c2, v2);
                }
                uint32_t sh = crc_shift[i];
                c = multmodp(sh, multmodp(sh, (uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
                p += 3 * L, n -= 3 * L;
            }
        }
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}
#endif

/* 1: the hardware path, 0: tables, -1: not decided yet. LODE_CRC_SW=1 forces
 * the tables (tests compare the two). */
static int crc_use_hw = -1;

uint32_t crc32c(uint32_t crc, const void *data, size_t n)
{
    int hw = __atomic_load_n(&crc_use_hw, __ATOMIC_RELAXED);
    if (hw < 0) {
        hw = 0;
#ifdef CRC_HW
        const char *e = getenv("LODE_CRC_SW");
        hw = __builtin_cpu_supports("sse4.2") && !(e && *e == '1');
#endif
        __atomic_store_n(&crc_use_hw, hw, __ATOMIC_RELAXED);
    }
#ifdef CRC_HW
    if (hw)
        return ~crc32c_hw(~crc, data, n);
#endif
    /* Building the table twice from two threads is harmless: same values. */
    if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
        crc_init();
    const uint8_t *p = data;
    crc = ~crc;
    /* slicing-by-8: eight table lookups per 8 input bytes */
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
              crc_tab[4][lo >> 24] ^ crc_tab[3][p[4]] ^ crc_tab[2][p[5]] ^ crc_tab[1][p[6]] ^
              crc_tab[0][p[7]];
    }
    while (n--)
        crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

/* ---------------------------------------------------------------- hash64 */

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t mix64(uint64_t x)
{
    /* a 64-bit finaliser: xorshift-multiply rounds, full avalanche */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t hash64(const void *data, size_t n, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = mix64(seed ^ 0x9e3779b97f4a7c15ull ^ (uint64_t)n);
    for (; n >= 8; p += 8, n -= 8)
        h = mix64(h ^ rd64(p)) + 0x9e3779b97f4a7c15ull;
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t |= (uint64_t)p[i] << (8 * i);
    return mix64(h ^ t ^ ((uint64_t)n << 56));
}
