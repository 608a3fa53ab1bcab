/* engine_opts.c - shared engine options for model commands (see engine_opts.h). */
#include "app/engine_opts.h"

#include "common/err.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void engine_args_init(struct engine_args *ea, struct app *a)
{
    ea->o = eng_opts_default();
    ea->model = NULL;
    static const int kv[3] = { KERN_FP8, KERN_BF16, KERN_F32 }; /* config enum order */
    ea->o.kv_type = kv[cfg_int(&a->cfg, CFG_KV_CACHE)];
    ea->o.threads = (int)cfg_int(&a->cfg, CFG_THREADS);
}

int engine_args_opt(struct engine_args *ea, struct app *a, const char *cmd, const char *name,
                    const char *value)
{
    if (!strcmp(name, "model")) {
        ea->model = value;
        return cli_cfg_flag(a, cmd, "model", "model", value);
    }
    if (!strcmp(name, "threads")) {
        int rc = cli_cfg_flag(a, cmd, "threads", "threads", value);
        ea->o.threads = (int)cfg_int(&a->cfg, CFG_THREADS);
        return rc;
    }
    if (!strcmp(name, "kv")) {
        int rc = cli_cfg_flag(a, cmd, "kv_cache", "kv", value);
        static const int kv[3] = { KERN_FP8, KERN_BF16, KERN_F32 };
        ea->o.kv_type = kv[cfg_int(&a->cfg, CFG_KV_CACHE)];
        return rc;
    }
    if (!strcmp(name, "backend")) {
        int rc = cli_cfg_flag(a, cmd, "backend", "backend", value);
        if (rc != EXIT_OK)
            return rc;
        if (!strcmp(value, "cuda")) {
            const char *why = NULL;
            if (kern_cuda_device_count(&why) <= 0)
                return cli_usage_error(cmd, "--backend cuda: no usable GPU (%s)",
                                       why ? why : "none found");
            ea->o.backend = ENG_BACKEND_CUDA;
        } else if (!strcmp(value, "auto")) {
            ea->o.backend = ENG_BACKEND_AUTO;
        } else if (!strcmp(value, "cpu")) {
            ea->o.backend = ENG_BACKEND_CPU;
        } else {
            return cli_usage_error(cmd, "--backend %s: expected auto, cpu or cuda", value);
        }
        return rc;
    }
    if (!strcmp(name, "yarn")) {
        char *end;
        double f = strtod(value, &end);
        if (*end || !(f >= 1 && f <= 64))
            return cli_usage_error(cmd, "--yarn: expected a factor between 1 and 64, got '%s'",
                                   value);
        ea->o.yarn = f;
        return EXIT_OK;
    }
    if (!strcmp(name, "isa")) {
        static const char *names[] = { "scalar", "avx2", "avx512" };
        if (!strcmp(value, "auto")) {
            ea->o.isa = KERN_ISA_AUTO;
            return EXIT_OK;
        }
        for (int i = 0; i < 3; i++)
            if (!strcmp(value, names[i])) {
                if (!kern_isa_supported(i))
                    return cli_usage_error(cmd, "--isa %s: this CPU does not support it", value);
                ea->o.isa = i;
                return EXIT_OK;
            }
        return cli_usage_error(cmd, "--isa: expected auto, scalar, avx2 or avx512");
    }
    return -1;
}

int engine_args_open(struct engine_args *ea, struct app *a, const char *cmd, struct eng **out)
{
    *out = NULL;
    const char *dir = ea->model ? ea->model : cfg_str(&a->cfg, CFG_MODEL);
    if (!dir[0])
        return cli_usage_error(cmd, "no model: pass --model DIR or set the config key model "
                                    "(lode mkmodel --out DIR writes a test model)");
    if (eng_open(out, dir, &ea->o) < 0)
        return cli_fail();
    return EXIT_OK;
}
