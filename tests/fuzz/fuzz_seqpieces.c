/* fuzz_seqpieces.c - seq_import_kv and seq_import_gdn on arbitrary bytes: never crash, and an
 * accepted piece exports back to the same bytes. The input is tried as is and, to reach the
 * parser behind the checksum, with a correct trailing CRC-32C. The model id (all 0x11) and the
 * state shape are fixed so seeds can carry valid pieces. */
#include "common/hash.h"
#include "engine/seqstate.h"
#include "kernels/kernels.h"
#include "tests/unit/seqfix.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void try_one(const uint8_t *data, size_t size)
{
    uint8_t id[32];
    memset(id, 0x11, sizeof id);
    struct seq_dims d = seqfix_dims(0xa); /* layers 1 and 3 full, as the seeds */
    struct seq_state *s;
    if (seq_new(&s, &d, KERN_FP8, 1) != 0)
        return;
    long from, to;
    struct buf b = { 0 };
    if (seq_import_kv(s, id, data, size, &from, &to) == 0) {
        s->pos = to;
        if (seq_export_kv(s, id, from, to, &b) != 0 || b.len != size || memcmp(b.p, data, size))
            __builtin_trap();
    }
    seq_free(s);
    if (seq_new(&s, &d, KERN_FP8, 1) != 0) {
        buf_free(&b);
        return;
    }
    s->written = 1L << 40; /* pretend every KV row is there: the test is the parser */
    buf_reset(&b);
    if (seq_import_gdn(s, id, data, size) == 0 &&
        (seq_export_gdn(s, id, &b) != 0 || b.len != size || memcmp(b.p, data, size)))
        __builtin_trap();
    buf_free(&b);
    seq_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_one(data, size);
    if (size < 4)
        return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed)
        return 0;
    memcpy(fixed, data, size - 4);
    uint32_t c = crc32c(0, fixed, size - 4);
    for (int i = 0; i < 4; i++)
        fixed[size - 4 + i] = (uint8_t)(c >> (8 * i));
    try_one(fixed, size);
    free(fixed);
    return 0;
}
