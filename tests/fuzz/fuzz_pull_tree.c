/* fuzz_pull_tree.c - libFuzzer target: what lode pull reads from the network and from
 * its manifest: a tree-listing page (pull_parse_tree), a Link header (pull_link_next)
 * and listed paths (pull_path_ok). Every accepted path must be safe to create under the
 * target directory. */
#include "app/pull.h"
#include "common/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 1 when some '/'-separated component of p is "", "." or "..". */
static int bad_component(const char *p)
{
    for (;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 1;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pull_listing l = { 0 };
    if (pull_parse_tree((const char *)data, size, "fuzz", &l) == 0) {
        for (int i = 0; i < l.n; i++) {
            const char *p = l.files[i].path;
            /* the parser promised these */
            if (!pull_path_ok(p) || p[0] == '/' || bad_component(p) ||
                l.files[i].size > (1ull << 53))
                abort();
        }
    }
    pull_listing_free(&l);
    /* the same bytes as a Link header value (NUL-terminated copy) */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char out[4096];
    if (pull_link_next(s, "https://huggingface.co/api/models/a/b/tree/x", out, sizeof out) == 1 &&
        strlen(out) >= sizeof out)
        abort();
    (void)pull_path_ok(s);
    free(s);
    return 0;
}
