/*
 * seqfix.h - the tiny sequence-state shape the seqstate tests, the cache
 * tests and the seq-pieces fuzz target share: 4 layers, KV of 2 heads x 8,
 * DeltaNet 12 conv channels (kernel 4), 2 value heads of 3 x 5. Which layers
 * are full attention is the caller's: the fuzz seeds were made with layers 1
 * and 3, so that shape must not change. No testhelp.h (the fuzz target
 * includes this too).
 */
#ifndef LODE_TESTS_SEQFIX_H
#define LODE_TESTS_SEQFIX_H

#include "engine/seqstate.h"

#include <string.h>

/* full_mask: bit l set = layer l is full attention. */
static inline struct seq_dims seqfix_dims(unsigned full_mask)
{
    struct seq_dims d;
    memset(&d, 0, sizeof d);
    d.n_layers = 4;
    for (int l = 0; l < d.n_layers; l++)
        d.is_full[l] = (full_mask >> l) & 1;
    d.n_kv = 2;
    d.head_dim = 8;
    d.conv_ch = 12;
    d.conv_k = 4;
    d.n_v = 2;
    d.dk = 3;
    d.dv = 5;
    return d;
}

#endif
