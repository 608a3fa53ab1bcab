/* fuzz_index.c - libFuzzer target: model.safetensors.index.json. A tiny two-shard mixed
 * checkpoint is written once to a private temporary directory; each input replaces its index
 * and the whole checkpoint is opened (shard names, missing/unlisted tensors, duplicates). */
#include "common/err.h"
#include "engine/ckpt.h"
#include "engine/mkmodel.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void cleanup(void)
{
    static const char *const files[] = { "config.json", "generation_config.json",
                                         "model.safetensors.index.json",
                                         "model-00001-of-00002.safetensors",
                                         "model-00002-of-00002.safetensors" };
    char p[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/lode-fuzz-index-XXXXXX");
        struct mk_opts o = {
            .preset = MK_TINY, .mixed = 1, .text_layout = 1, .seed = 1, .shards = 2
        };
        if (!mkdtemp(dir) || (o.out = dir, mk_write(&o)) < 0) {
            fprintf(stderr, "fuzz_index: cannot build the fixture: %s\n", err_msg());
            abort();
        }
        atexit(cleanup);
    }
    char p[128];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(p, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    struct ckpt c;
    if (ckpt_open(&c, dir) == 0)
        ckpt_close(&c);
    return 0;
}
