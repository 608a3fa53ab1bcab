/* fuzz_safetensors.c - libFuzzer target: the safetensors header validator on any bytes. Every
 * accepted file's tensors must lie inside the input. */
#include "engine/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_file f;
    memset(&f, 0, sizeof f);
    if (st_parse(&f, data, size, "fuzz.safetensors") == 0) {
        for (size_t i = 0; i < f.n; i++) {
            const struct st_tensor *t = &f.t[i];
            if (t->data < data || t->data + (t->end - t->begin) > data + size)
                abort();
            if (st_find(&f, t->name) != t)
                abort();
        }
        st_close(&f);
    }
    return 0;
}
