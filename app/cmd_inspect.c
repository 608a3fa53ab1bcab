/* cmd_inspect.c - `lode inspect DIR`: architecture, precision table and the byte budget. */
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "engine/ckpt.h"
#include "engine/mkmodel.h"

#include <stdio.h>
#include <string.h>

static const struct cli_opt opts[] = {
    { "json", 0, 0, NULL, "print one JSON object" },
    { "config-only", 0, 1, "FILE", "no weights: size the recipe (--quant) for this config.json" },
    { "quant", 0, 1, "KIND", "with --config-only: bf16 or mixed (default mixed)" },
    { 0 },
};

static const char *layer_kind(int t) { return t == MCFG_FULL_ATTN ? "full" : "linear"; }

static void print_text(const struct ckpt *c, const struct ckpt_stats *s, const char *src,
                       int config_only)
{
    const struct mcfg *m = &c->cfg;
    printf("checkpoint    %s%s\n", src, config_only ? " (config only: recipe sizes)" : "");
    printf("architecture  %s (text tensors under %s)\n", m->arch, m->prefix);
    printf("layers        %lld: %lld Gated DeltaNet + %lld full attention (",
           (long long)m->n_layers, (long long)(m->n_layers - m->n_full), (long long)m->n_full);
    for (int64_t l = 0, k = 0; l < m->n_layers; l++)
        if (m->layer_type[l] == MCFG_FULL_ATTN)
            printf("%s%lld", k++ ? " " : "at ", (long long)l);
    printf(")\n");
    printf("hidden        %lld, vocab %lld, rms_eps %g, tied embeddings %s\n", (long long)m->hidden,
           (long long)m->vocab, m->rms_eps, m->tie_embeddings ? "yes" : "no");
    printf("attention     %lld q heads, %lld kv heads, head_dim %lld, output gate %s, rotary %lld "
           "dims, theta %g, rope %s",
           (long long)m->n_heads, (long long)m->n_kv_heads, (long long)m->head_dim,
           m->attn_output_gate ? "yes" : "no", (long long)m->rotary_dim, m->rope_theta,
           m->rope_type == MCFG_ROPE_YARN ? "yarn" : "default");
    if (m->rope_type == MCFG_ROPE_YARN)
        printf(" (factor %g, original %lld)", m->yarn_factor, (long long)m->yarn_orig_max_pos);
    printf(", max positions %lld\n", (long long)m->max_pos);
    printf("deltanet      %lld key heads x %lld, %lld value heads x %lld, conv kernel %lld\n",
           (long long)m->lin_k_heads, (long long)m->lin_k_dim, (long long)m->lin_v_heads,
           (long long)m->lin_v_dim, (long long)m->conv_kernel);
    printf("moe           %lld experts, top %lld, expert FFN %lld, shared FFN %lld, experts %s\n",
           (long long)m->n_experts, (long long)m->top_k, (long long)m->moe_inter,
           (long long)m->shared_inter,
           c->layers && c->layers[0].experts_fused ? "fused 3-D" : "per expert");
    if (!config_only) {
        printf("quantization  ");
        if (!c->q.present)
            printf("none\n");
        else {
            printf("compressed-tensors pack-quantized:");
            for (int i = 0; i < c->q.n_schemes; i++)
                if (c->q.schemes[i].group_size)
                    printf(" %s int%d group %d;", c->q.schemes[i].group, c->q.schemes[i].bits,
                           c->q.schemes[i].group_size);
                else
                    printf(" %s int%d channel;", c->q.schemes[i].group, c->q.schemes[i].bits);
            printf(" %d ignore entries\n", c->q.n_ignore);
        }
        printf("files         %d shard%s, %zu tensors (%zu mtp, %zu visual indexed, not bound)\n",
               c->n_shards, c->n_shards == 1 ? "" : "s", c->n_idx, c->n_mtp, c->n_visual);
    }
    if (m->have_gen)
        printf("generation    temperature %g, top_p %g, top_k %lld, %d eos ids\n", m->temperature,
               m->top_p, (long long)m->gen_top_k, m->n_eos);
    printf("\n%-36s %10s %16s\n", "precision", "tensors", "bytes");
    for (int k = 0; k < CK_NCLASS; k++)
        if (s->count[k])
            printf("%-36s %10llu %16llu\n", ckpt_class_name(k), (unsigned long long)s->count[k],
                   (unsigned long long)s->bytes[k]);
    printf("%-36s %10s %16llu  (%.2f GB)\n", "total (text model)", "",
           (unsigned long long)s->total_bytes, (double)s->total_bytes / 1e9);
    if (s->extra_bytes)
        printf("%-36s %10s %16llu\n", "mtp + visual (indexed)", "",
               (unsigned long long)s->extra_bytes);
    printf("\nweights read per decoded token       %llu bytes (%.1f MB)\n",
           (unsigned long long)s->per_token_bytes, (double)s->per_token_bytes / 1e6);
    printf("KV cache per context token           %llu bytes bf16, %llu bytes fp8\n",
           (unsigned long long)s->kv_bytes_bf16, (unsigned long long)s->kv_bytes_fp8);
    printf(
        "DeltaNet state per sequence          %llu bytes (%.1f MB: fp32 recurrent + bf16 conv)\n",
        (unsigned long long)s->gdn_state_bytes, (double)s->gdn_state_bytes / 1e6);
}

static int print_json(const struct ckpt *c, const struct ckpt_stats *s, const char *src)
{
    const struct mcfg *m = &c->cfg;
    struct buf b = { 0 };
    int rc = buf_puts(&b, "{\"checkpoint\":");
    rc = rc || buf_json_str(&b, src, strlen(src));
    rc = rc ||
         buf_printf(&b,
                    ",\"architecture\":\"%s\",\"prefix\":\"%s\",\"vocab\":%lld,\"hidden\":%lld,"
                    "\"layers\":%lld,\"full_attention_layers\":%lld,\"heads\":%lld,"
                    "\"kv_heads\":%lld,\"head_dim\":%lld,\"rotary_dim\":%lld,"
                    "\"rope_type\":\"%s\",\"experts\":%lld,\"top_k\":%lld,"
                    "\"moe_intermediate\":%lld,\"shared_intermediate\":%lld,"
                    "\"quantized\":%s,\"shards\":%d,\"tensors\":%zu,\"layer_types\":[",
                    m->arch, m->prefix, (long long)m->vocab, (long long)m->hidden,
                    (long long)m->n_layers, (long long)m->n_full, (long long)m->n_heads,
                    (long long)m->n_kv_heads, (long long)m->head_dim, (long long)m->rotary_dim,
                    m->rope_type == MCFG_ROPE_YARN ? "yarn" : "default", (long long)m->n_experts,
                    (long long)m->top_k, (long long)m->moe_inter, (long long)m->shared_inter,
                    c->q.present ? "true" : "false", c->n_shards, c->n_idx);
    for (int64_t l = 0; l < m->n_layers && !rc; l++)
        rc = buf_printf(&b, "%s\"%s\"", l ? "," : "", layer_kind(m->layer_type[l]));
    rc = rc || buf_puts(&b, "],\"precision\":[");
    int first = 1;
    for (int k = 0; k < CK_NCLASS && !rc; k++)
        if (s->count[k]) {
            rc = buf_printf(&b, "%s{\"class\":\"%s\",\"tensors\":%llu,\"bytes\":%llu}",
                            first ? "" : ",", ckpt_class_name(k), (unsigned long long)s->count[k],
                            (unsigned long long)s->bytes[k]);
            first = 0;
        }
    rc = rc ||
         buf_printf(&b,
                    "],\"total_bytes\":%llu,\"extra_bytes\":%llu,\"bytes_per_token\":%llu,"
                    "\"kv_bytes_per_token_bf16\":%llu,\"kv_bytes_per_token_fp8\":%llu,"
                    "\"deltanet_state_bytes\":%llu}\n",
                    (unsigned long long)s->total_bytes, (unsigned long long)s->extra_bytes,
                    (unsigned long long)s->per_token_bytes, (unsigned long long)s->kv_bytes_bf16,
                    (unsigned long long)s->kv_bytes_fp8, (unsigned long long)s->gdn_state_bytes);
    if (rc) {
        buf_free(&b);
        return err_set(ERR_NOMEM, "out of memory");
    }
    fwrite(b.p, 1, b.len, stdout);
    buf_free(&b);
    return 0;
}

static int run(struct app *a, int argc, char **argv)
{
    (void)a;
    int json = 0, mixed = 1;
    const char *dir = NULL, *cfgfile = NULL;
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS) {
            if (dir)
                return cli_usage_error("inspect", "unexpected argument '%s'", c.arg);
            dir = c.arg;
        } else if (o == 0) {
            json = 1;
        } else if (o == 1) {
            cfgfile = c.arg;
        } else if (o == 2) {
            if (strcmp(c.arg, "bf16") && strcmp(c.arg, "mixed"))
                return cli_usage_error("inspect", "--quant must be bf16 or mixed");
            mixed = !strcmp(c.arg, "mixed");
        }
    }
    if (!dir == !cfgfile)
        return cli_usage_error("inspect", "give a checkpoint DIR or --config-only FILE");
    struct ckpt ck;
    struct ckpt_stats s;
    if (cfgfile) {
        struct mcfg m;
        struct buf t = { 0 };
        int rc = fs_read_file(cfgfile, 16u << 20, &t);
        if (rc >= 0)
            rc = mcfg_parse(&m, t.p ? t.p : "", t.len, cfgfile);
        buf_free(&t);
        if (rc < 0 || mk_synth(&ck, &m, mixed) < 0)
            return cli_fail();
    } else if (ckpt_open(&ck, dir) < 0) {
        return cli_fail();
    }
    ckpt_stats(&ck, &s);
    int rc = 0;
    if (json)
        rc = print_json(&ck, &s, cfgfile ? cfgfile : dir);
    else
        print_text(&ck, &s, cfgfile ? cfgfile : dir, cfgfile != NULL);
    ckpt_close(&ck);
    return rc < 0 ? cli_fail() : EXIT_OK;
}

const struct command cmd_inspect = {
    "inspect",
    run,
    "describe a checkpoint: architecture, precision table, bytes per token",
    "usage: lode inspect [--json] DIR\n"
    "       lode inspect [--json] --config-only config.json [--quant bf16|mixed]\n"
    "\n"
    "Opens the checkpoint exactly as the engine does (every tensor validated and bound)\n"
    "and prints the architecture, tensor counts and bytes by precision class, the\n"
    "weight bytes read per decoded token (dense weights + top-k average routed experts\n"
    "+ lm_head + one embedding row), KV-cache bytes per context token and the Gated\n"
    "DeltaNet state per sequence. Exit 1 with the defect named when the checkpoint is\n"
    "malformed or foreign. --config-only sizes mkmodel's recipe for a config.json\n"
    "without any weights.\n",
    opts,
};
