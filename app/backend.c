/*
 * backend.c - be_open: the backend spec ("auto", "cpu", "cuda",
 * "script:FILE", "openai:URL") to its constructor, and the defaults.
 */
#include "app/backend.h"
#include "common/err.h"
#include "engine/model.h"
#include "kernels/kernels.h"

#include <string.h>

struct be_config be_config_default(void)
{
    struct eng_opts o = eng_opts_default();
    struct be_config c = { 0 };
    c.threads = o.threads;
    c.kv_type = o.kv_type;
    c.yarn = 0;
    c.context = 0;
    c.isa = KERN_ISA_AUTO;
    c.timeout_s = 300;
    return c;
}

static int has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

int be_open(struct backend **out, const char *spec, const struct be_config *cfg)
{
    *out = NULL;
    struct be_config def = be_config_default();
    if (!cfg)
        cfg = &def;
    if (!spec || !*spec)
        return err_set(ERR_INVAL, "backend: empty name (expected auto, cpu, cuda, script:FILE or "
                                  "openai:URL)");
    if (!strcmp(spec, "auto") || !strcmp(spec, "cpu") || !strcmp(spec, "cuda"))
        return be_engine_open(out, spec, cfg);
    if (has_prefix(spec, "script:")) {
        if (!spec[7])
            return err_set(ERR_INVAL, "backend script: needs a file (script:FILE)");
        return be_script_open(out, spec + 7, cfg);
    }
    if (has_prefix(spec, "openai:")) {
        if (!spec[7])
            return err_set(ERR_INVAL, "backend openai: needs a URL (openai:URL)");
        return be_openai_open(out, spec + 7, cfg);
    }
    return err_set(ERR_INVAL, "backend '%s': expected auto, cpu, cuda, script:FILE or openai:URL",
                   spec);
}

void be_close(struct backend *b)
{
    if (b)
        b->ops->close(b);
}
