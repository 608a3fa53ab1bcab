/*
 * genstop.c - the ids that end a generation (see genstop.h).
 */
#include "app/genstop.h"

#include <string.h>

int genstop_ids(const struct tok *t, const struct mcfg *mc, int32_t ids[GENSTOP_MAX])
{
    static const char *markers[2] = { "<|im_end|>", "<|endoftext|>" };
    int n = 0;
    for (int k = 0; k < 2; k++)
        if ((ids[n] = tok_find(t, markers[k], strlen(markers[k]))) >= 0)
            n++;
    for (int k = 0; k < mc->n_eos && k < MCFG_MAX_EOS; k++)
        if (!genstop_is(ids, n, (int32_t)mc->eos[k]))
            ids[n++] = (int32_t)mc->eos[k];
    return n;
}

int genstop_is(const int32_t *ids, int n, int32_t id)
{
    for (int k = 0; k < n; k++)
        if (ids[k] == id)
            return 1;
    return 0;
}
