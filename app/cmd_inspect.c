/* cmd_inspect.c - `lode inspect DIR`: architecture, precision table and the byte budget. */
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "engine/budget.h"
#include "engine/ckpt.h"
#include "engine/mkmodel.h"
#include "kernels/kernels.h"
#include "kernels/kernels_cuda.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct cli_opt opts[] = {
    { "json", 0, 0, NULL, "print one JSON object" },
    { "config-only", 0, 1, "FILE", "no weights: size the recipe (--quant) for this config.json" },
    { "quant", 0, 1, "KIND", "with --config-only: bf16 or mixed (default mixed)" },
    { "budget", 0, 0, NULL, "print the memory plan instead (GPU; RAM with --backend cpu)" },
    { "ctx", 0, 1, "N",
      "with --budget: context tokens per sequence (default 262144; k, M suffixes)" },
    { "seqs", 0, 1, "S", "with --budget: sequences resident at once (default 1)" },
    { "kv", 0, 1, "TYPE", "with --budget: KV cache fp8 or bf16 (default fp8); f32 on the cpu" },
    { "gpu-mem", 0, 1, "GB", "with --budget: GPU memory in GiB (default: the device's, else 48)" },
    { "chunk", 0, 1, "N", "with --budget: prefill tokens per step (default 256)" },
    { "backend", 0, 1, "NAME",
      "with --budget: cuda (the GPU plan, default) or cpu (the RAM plan)" },
    { "threads", 0, 1, "N", "with --budget --backend cpu: kernel threads (default: all cores)" },
    { "mem", 0, 1, "GB", "with --budget --backend cpu: RAM in GiB (default: MemTotal)" },
    { "snaps", 0, 1, "N", "with --budget --backend cpu: snapshots per sequence (default 16)" },
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

/* ---------------------------------------------------------------- --budget */

struct budget_args {
    long ctx, seqs, chunk;
    int kv_type;
    double gpu_gib; /* 0: the device's, else 48 */
    int cpu;        /* --backend cpu: the RAM plan */
    int threads;    /* 0: all cores */
    double mem_gib; /* 0: MemTotal */
    long snaps;     /* snapshots per sequence (the CPU plan) */
};

static double gib(uint64_t b) { return (double)b / 1073741824.0; }

/* A count with an optional k (1024) or M (1048576) suffix; -1 when malformed. */
static long parse_count(const char *s)
{
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    long mul = *end == 'k' || *end == 'K' ? 1024 : *end == 'm' || *end == 'M' ? 1048576 : 1;
    if (mul > 1)
        end++;
    if (errno || end == s || *end || v < 1 || v > (1L << 40) / mul)
        return -1;
    return v * mul;
}

/* The device's total memory when one answers; 0 otherwise (the error is not kept). */
static uint64_t device_bytes(void)
{
    size_t fr = 0, tot = 0;
    if (kcu_init(0) < 0 || kcu_mem_info(&fr, &tot) < 0) {
        err_clear();
        return 0;
    }
    kcu_shutdown();
    return tot;
}

static void print_line(const char *what, uint64_t bytes, const char *note)
{
    printf("%-36s %9.2f GiB %16llu%s%s\n", what, gib(bytes), (unsigned long long)bytes,
           *note ? "  " : "", note);
}

/* The verdict when everything but (some) snapshots fits in cap; 0 (nothing printed) when even
 * that does not fit, which each plan explains its own way. Shared by the GPU and CPU plans. */
static int verdict_snapshots(int fits, uint64_t required, uint64_t total, uint64_t over,
                             uint64_t cap, long snaps_fit, long snaps)
{
    if (fits)
        printf("verdict: fits, %.2f GiB to spare; %ld of %ld snapshots per sequence\n",
               gib(cap - total), snaps_fit, snaps);
    else if (required <= cap)
        printf("verdict: does not fit with %ld snapshots per sequence (%.2f GiB over): "
               "everything else fits, and %ld snapshot%s per sequence fit%s\n",
               snaps, gib(over), snaps_fit, snaps_fit == 1 ? "" : "s", snaps_fit == 1 ? "s" : "");
    else
        return 0;
    return 1;
}

/* What would fit instead: the longest context at these sequences, the most sequences at this
 * context. */
static void print_limits(long ctx, long seqs, long max_ctx, long max_seqs)
{
    if (max_ctx > 0)
        printf("  at %ld sequence%s the longest context that fits is %ld tokens\n", seqs,
               seqs == 1 ? "" : "s", max_ctx);
    else
        printf("  at %ld sequence%s no context fits\n", seqs, seqs == 1 ? "" : "s");
    printf("  at %ld tokens of context at most %ld sequence%s fit\n", ctx, max_seqs,
           max_seqs == 1 ? "" : "s");
}

static void print_yarn_note(const struct mcfg *m, long ctx)
{
    if (ctx > m->max_pos && m->rope_type != MCFG_ROPE_YARN)
        printf("note: a context of %ld is beyond max_position_embeddings (%lld): it needs YaRN "
               "rope scaling (factor %.0f), which this config does not set\n",
               ctx, (long long)m->max_pos, ceil((double)ctx / (double)m->max_pos));
}

/* Writes a JSON document built with rc accumulating buf failures; frees it. */
static int emit_json(struct buf *o, int rc)
{
    if (!rc)
        fwrite(o->p, 1, o->len, stdout);
    buf_free(o);
    return rc ? err_set(ERR_NOMEM, "out of memory") : 0;
}

static void print_budget(const struct ckpt *c, const struct ckpt_stats *s, const char *src,
                         const struct budget_req *r, const struct budget *b, const char *gpu_src)
{
    const struct mcfg *m = &c->cfg;
    char note[256];
    printf("GPU memory plan for %s\n", src);
    printf("request: context %ld x %ld sequence%s, KV %s, %ld snapshots per sequence, "
           "prefill chunk %ld, GPU %.2f GiB (%s)\n\n",
           r->ctx, r->seqs, r->seqs == 1 ? "" : "s", kern_dtype_name(r->kv_type), r->snaps,
           r->chunk, gib(r->gpu_bytes), gpu_src);
    print_line("weights", b->weights, "the checkpoint's text-model tensors:");
    for (int k = 0; k < CK_NCLASS; k++)
        if (s->count[k])
            printf("  %-34s %9.2f GiB %16llu\n", ckpt_class_name(k), gib(s->bytes[k]),
                   (unsigned long long)s->bytes[k]);
    snprintf(note, sizeof note, "%llu B/token x %ld x %ld over %lld full-attention layers",
             (unsigned long long)b->kv_per_token, r->ctx, r->seqs, (long long)m->n_full);
    print_line("KV cache", b->kv, note);
    snprintf(note, sizeof note, "%llu B/sequence (conv + recurrent, fp32) x %ld",
             (unsigned long long)b->gdn_per_seq, r->seqs);
    print_line("DeltaNet states", b->gdn, note);
    snprintf(note, sizeof note, "%ld per sequence x %ld x %llu B (the DeltaNet states)", r->snaps,
             r->seqs, (unsigned long long)b->snap_bytes);
    print_line("snapshots", b->snaps, note);
    snprintf(note, sizeof note, "fp32 buffers of one %ld-token prefill chunk", r->chunk);
    print_line("activations", b->act, note);
    print_line("attention scratch", b->attn_work, "decode split-KV partials (upper bound)");
    print_line("CUDA graph pools", b->graphs, "an estimate, not measured");
    print_line("runtime reserve", b->runtime, "CUDA context, allocator rounding (engc_open's)");
    print_line("total", b->total, "");
    snprintf(note, sizeof note, "%s", gpu_src);
    print_line("GPU", r->gpu_bytes, note);
    printf("\n");
    if (!verdict_snapshots(b->fits, b->required, b->total, b->over, r->gpu_bytes, b->snaps_fit,
                           r->snaps)) {
        uint64_t rest = b->total - b->kv;
        printf("verdict: does not fit, %.2f GiB over: the KV cache (%.2f GiB) needs more than "
               "the %.2f GiB left after everything else (%.2f GiB)\n",
               gib(b->over), gib(b->kv), rest < r->gpu_bytes ? gib(r->gpu_bytes - rest) : 0.0,
               gib(rest));
        print_limits(r->ctx, r->seqs, b->max_ctx, b->max_seqs);
    }
    print_yarn_note(m, r->ctx);
}

static int print_budget_json(const char *src, const struct budget_req *r, const struct budget *b,
                             const struct ckpt_stats *s, const char *gpu_src)
{
    struct buf o = { 0 };
    int rc = buf_puts(&o, "{\"checkpoint\":");
    rc = rc || buf_json_str(&o, src, strlen(src));
    rc = rc || buf_printf(&o,
                          ",\"ctx\":%ld,\"seqs\":%ld,\"kv\":\"%s\",\"chunk\":%ld,"
                          "\"snapshots_wanted\":%ld,\"gpu_bytes\":%llu,\"gpu_source\":\"%s\","
                          "\"weights_by_precision\":[",
                          r->ctx, r->seqs, kern_dtype_name(r->kv_type), r->chunk, r->snaps,
                          (unsigned long long)r->gpu_bytes, gpu_src);
    int first = 1;
    for (int k = 0; k < CK_NCLASS && !rc; k++)
        if (s->count[k]) {
            rc = buf_printf(&o, "%s{\"class\":\"%s\",\"bytes\":%llu}", first ? "" : ",",
                            ckpt_class_name(k), (unsigned long long)s->bytes[k]);
            first = 0;
        }
    rc = rc ||
         buf_printf(&o,
                    "],\"kv_bytes_per_token\":%llu,\"deltanet_bytes_per_seq\":%llu,"
                    "\"snapshot_bytes\":%llu,\"weights\":%llu,\"kv_cache\":%llu,"
                    "\"deltanet_states\":%llu,\"snapshots\":%llu,\"activations\":%llu,"
                    "\"attention_scratch\":%llu,\"graph_pools_estimate\":%llu,\"runtime\":%llu,"
                    "\"total\":%llu,\"required_without_snapshots\":%llu,\"fits\":%s,"
                    "\"over_bytes\":%llu,\"snapshots_fit\":%ld,\"max_ctx\":%ld,\"max_seqs\":%ld}\n",
                    (unsigned long long)b->kv_per_token, (unsigned long long)b->gdn_per_seq,
                    (unsigned long long)b->snap_bytes, (unsigned long long)b->weights,
                    (unsigned long long)b->kv, (unsigned long long)b->gdn,
                    (unsigned long long)b->snaps, (unsigned long long)b->act,
                    (unsigned long long)b->attn_work, (unsigned long long)b->graphs,
                    (unsigned long long)b->runtime, (unsigned long long)b->total,
                    (unsigned long long)b->required, b->fits ? "true" : "false",
                    (unsigned long long)b->over, b->snaps_fit, b->max_ctx, b->max_seqs);
    return emit_json(&o, rc);
}

/* The plan for an opened (or synthesized) checkpoint; exit 1 when it does not fit. */
static int run_budget(const struct ckpt *c, const struct ckpt_stats *s, const char *src,
                      const struct budget_args *ba, int json)
{
    struct budget_req r = {
        .ctx = ba->ctx,
        .seqs = ba->seqs,
        .kv_type = ba->kv_type,
        .snaps = BUDGET_SNAPS,
        .chunk = ba->chunk,
        .weight_bytes = s->total_bytes,
    };
    const char *gpu_src = "--gpu-mem";
    if (ba->gpu_gib > 0) {
        r.gpu_bytes = (uint64_t)(ba->gpu_gib * 1073741824.0);
    } else if ((r.gpu_bytes = device_bytes()) > 0) {
        gpu_src = "device 0";
    } else {
        r.gpu_bytes = (uint64_t)48 << 30;
        gpu_src = "default 48 GiB card";
    }
    struct budget b;
    if (budget_plan(&c->cfg, &r, &b) < 0)
        return -1;
    if (json) {
        if (print_budget_json(src, &r, &b, s, gpu_src) < 0)
            return -1;
    } else {
        print_budget(c, s, src, &r, &b, gpu_src);
    }
    return 0;
}

/* MemTotal from /proc/meminfo; 0 when it cannot be read. */
static uint64_t mem_total(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kb * 1024;
}

static void print_budget_cpu(const struct ckpt *c, const struct ckpt_stats *s, const char *src,
                             const struct budget_cpu_req *r, const struct budget_cpu *b,
                             const char *mem_src)
{
    const struct mcfg *m = &c->cfg;
    char note[256];
    printf("CPU memory plan for %s\n", src);
    printf("request: context %ld x %ld sequence%s, KV %s, %ld snapshots per sequence, "
           "prefill chunk %ld, %d thread%s, RAM %.2f GiB (%s)\n\n",
           r->ctx, r->seqs, r->seqs == 1 ? "" : "s", kern_dtype_name(r->kv_type), r->snaps,
           r->chunk, r->threads, r->threads == 1 ? "" : "s", gib(r->mem_bytes), mem_src);
    print_line("weights", b->weights, "mmap'd read-only: page cache, not heap; by precision:");
    for (int k = 0; k < CK_NCLASS; k++)
        if (s->count[k])
            printf("  %-34s %9.2f GiB %16llu\n", ckpt_class_name(k), gib(s->bytes[k]),
                   (unsigned long long)s->bytes[k]);
    if (s->extra_bytes)
        printf("  %-34s %9.2f GiB %16llu  in the files, never read (not counted)\n", "mtp + visual",
               gib(s->extra_bytes), (unsigned long long)s->extra_bytes);
    snprintf(note, sizeof note, "%llu B/token x %ld x %ld over %lld full-attention layers",
             (unsigned long long)b->kv_per_token, r->ctx, r->seqs, (long long)m->n_full);
    print_line("KV cache", b->kv, note);
    snprintf(note, sizeof note, "%llu B/sequence (conv + recurrent, fp32) x %ld",
             (unsigned long long)b->gdn_per_seq, r->seqs);
    print_line("DeltaNet states", b->gdn, note);
    snprintf(note, sizeof note, "%ld per sequence x %ld x %llu B (the DeltaNet states)", r->snaps,
             r->seqs, (unsigned long long)b->snap_bytes);
    print_line("snapshots", b->snaps, note);
    snprintf(note, sizeof note, "int32 ids the backend holds, %ld x %ld", r->ctx, r->seqs);
    print_line("token ids", b->ids, note);
    snprintf(note, sizeof note, "fp32 buffers of one %ld-token prefill chunk + a logits row",
             r->chunk < r->ctx ? r->chunk : r->ctx);
    print_line("activations", b->act, note);
    snprintf(note, sizeof note, "%llu B per thread x %d (matmul block, attention row at ctx)",
             (unsigned long long)b->scratch_per_thread, r->threads);
    print_line("kernel scratch", b->scratch, note);
    print_line("kernel work", b->work, "MoE of one chunk or split attention at ctx (upper bound)");
    print_line("engine tables", b->tables, "f32 norms, conv, A_log, dt_bias; expert views");
    print_line("process reserve", b->runtime,
               "code, libc, tokenizer, store (measured, rounded up)");
    print_line("total", b->total, "");
    print_line("RAM", r->mem_bytes, mem_src);
    printf("\n");
    if (!verdict_snapshots(b->fits, b->required, b->total, b->over, r->mem_bytes, b->snaps_fit,
                           r->snaps)) {
        uint64_t rest = b->total - b->kv;
        uint64_t once = b->weights + b->act + b->scratch + b->work + b->tables + b->runtime;
        if (once > r->mem_bytes)
            printf("verdict: does not fit, %.2f GiB over: the weights (%.2f GiB) and the "
                   "engine's own buffers (%.2f GiB) alone exceed the RAM, so decoding would read "
                   "weights from disk on every token\n",
                   gib(b->over), gib(b->weights), gib(once - b->weights));
        else
            printf("verdict: does not fit, %.2f GiB over: the KV cache (%.2f GiB) needs more "
                   "than the %.2f GiB left after everything else (%.2f GiB)\n",
                   gib(b->over), gib(b->kv), rest < r->mem_bytes ? gib(r->mem_bytes - rest) : 0.0,
                   gib(rest));
        print_limits(r->ctx, r->seqs, b->max_ctx, b->max_seqs);
    }
    print_yarn_note(m, r->ctx);
}

static int print_budget_cpu_json(const char *src, const struct budget_cpu_req *r,
                                 const struct budget_cpu *b, const char *mem_src)
{
    struct buf o = { 0 };
    int rc = buf_puts(&o, "{\"checkpoint\":");
    rc = rc || buf_json_str(&o, src, strlen(src));
    rc = rc ||
         buf_printf(
             &o,
             ",\"backend\":\"cpu\",\"ctx\":%ld,\"seqs\":%ld,\"kv\":\"%s\",\"chunk\":%ld,"
             "\"threads\":%d,\"snapshots_wanted\":%ld,\"mem_bytes\":%llu,\"mem_source\":\"%s\","
             "\"kv_bytes_per_token\":%llu,\"deltanet_bytes_per_seq\":%llu,"
             "\"snapshot_bytes\":%llu,\"weights\":%llu,\"kv_cache\":%llu,"
             "\"deltanet_states\":%llu,\"snapshots\":%llu,\"token_ids\":%llu,"
             "\"activations\":%llu,\"scratch_per_thread\":%llu,\"kernel_scratch\":%llu,"
             "\"kernel_work\":%llu,\"tables\":%llu,\"runtime\":%llu,\"total\":%llu,"
             "\"required_without_snapshots\":%llu,\"fits\":%s,\"over_bytes\":%llu,"
             "\"snapshots_fit\":%ld,\"max_ctx\":%ld,\"max_seqs\":%ld}\n",
             r->ctx, r->seqs, kern_dtype_name(r->kv_type), r->chunk, r->threads, r->snaps,
             (unsigned long long)r->mem_bytes, mem_src, (unsigned long long)b->kv_per_token,
             (unsigned long long)b->gdn_per_seq, (unsigned long long)b->snap_bytes,
             (unsigned long long)b->weights, (unsigned long long)b->kv, (unsigned long long)b->gdn,
             (unsigned long long)b->snaps, (unsigned long long)b->ids, (unsigned long long)b->act,
             (unsigned long long)b->scratch_per_thread, (unsigned long long)b->scratch,
             (unsigned long long)b->work, (unsigned long long)b->tables,
             (unsigned long long)b->runtime, (unsigned long long)b->total,
             (unsigned long long)b->required, b->fits ? "true" : "false",
             (unsigned long long)b->over, b->snaps_fit, b->max_ctx, b->max_seqs);
    return emit_json(&o, rc);
}

/* The CPU engine's RAM plan: exit 0 whether or not it fits, as the GPU plan. */
static int run_budget_cpu(const struct ckpt *c, const struct ckpt_stats *s, const char *src,
                          const struct budget_args *ba, int json)
{
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    struct budget_cpu_req r = {
        .ctx = ba->ctx,
        .seqs = ba->seqs,
        .kv_type = ba->kv_type,
        .snaps = ba->snaps,
        .chunk = ba->chunk,
        .threads = ba->threads > 0 ? ba->threads
                   : nproc > 0     ? (int)nproc
                                   : 1,
        .weight_bytes = s->total_bytes,
    };
    const char *mem_src = "--mem";
    if (ba->mem_gib > 0) {
        r.mem_bytes = (uint64_t)(ba->mem_gib * 1073741824.0);
    } else if ((r.mem_bytes = mem_total()) > 0) {
        mem_src = "MemTotal";
    } else {
        return err_set(ERR_IO, "inspect: cannot read MemTotal from /proc/meminfo (use --mem)");
    }
    struct budget_cpu b;
    if (budget_plan_cpu(&c->cfg, &r, &b) < 0)
        return -1;
    if (json)
        return print_budget_cpu_json(src, &r, &b, mem_src);
    print_budget_cpu(c, s, src, &r, &b, mem_src);
    return 0;
}

static int run(struct app *a, int argc, char **argv)
{
    (void)a;
    int json = 0, mixed = 1, budget = 0;
    struct budget_args ba = {
        .ctx = 262144, .seqs = 1, .chunk = 256, .kv_type = KERN_FP8, .snaps = BUDGET_SNAPS
    };
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
        } else if (o == 3) {
            budget = 1;
        } else if (o == 4) {
            if ((ba.ctx = parse_count(c.arg)) < 0)
                return cli_usage_error("inspect", "--ctx wants a positive count, not '%s'", c.arg);
        } else if (o == 5) {
            if ((ba.seqs = parse_count(c.arg)) < 0 || ba.seqs > 65536)
                return cli_usage_error("inspect", "--seqs wants 1 to 65536, not '%s'", c.arg);
        } else if (o == 6) {
            if (strcmp(c.arg, "fp8") && strcmp(c.arg, "bf16") && strcmp(c.arg, "f32"))
                return cli_usage_error("inspect", "--kv must be fp8 or bf16 (or f32 on the cpu)");
            ba.kv_type = !strcmp(c.arg, "fp8")    ? KERN_FP8
                         : !strcmp(c.arg, "bf16") ? KERN_BF16
                                                  : KERN_F32;
        } else if (o == 7) {
            char *end;
            ba.gpu_gib = strtod(c.arg, &end);
            if (end == c.arg || *end || !(ba.gpu_gib > 0 && ba.gpu_gib < 1e6))
                return cli_usage_error("inspect", "--gpu-mem wants GiB > 0, not '%s'", c.arg);
        } else if (o == 8) {
            if ((ba.chunk = parse_count(c.arg)) < 0 || ba.chunk > (1L << 20))
                return cli_usage_error("inspect", "--chunk wants 1 to 1048576, not '%s'", c.arg);
        } else if (o == 9) {
            if (strcmp(c.arg, "cpu") && strcmp(c.arg, "cuda"))
                return cli_usage_error("inspect", "--backend must be cpu or cuda");
            ba.cpu = !strcmp(c.arg, "cpu");
        } else if (o == 10) {
            long v = parse_count(c.arg);
            if (v < 1 || v > 4096)
                return cli_usage_error("inspect", "--threads wants 1 to 4096, not '%s'", c.arg);
            ba.threads = (int)v;
        } else if (o == 11) {
            char *end;
            ba.mem_gib = strtod(c.arg, &end);
            if (end == c.arg || *end || !(ba.mem_gib > 0 && ba.mem_gib < 1e6))
                return cli_usage_error("inspect", "--mem wants GiB > 0, not '%s'", c.arg);
        } else if (o == 12) {
            char *end;
            ba.snaps = strtol(c.arg, &end, 10);
            if (end == c.arg || *end || ba.snaps < 0 || ba.snaps > 65536)
                return cli_usage_error("inspect", "--snaps wants 0 to 65536, not '%s'", c.arg);
        }
    }
    if (!dir == !cfgfile)
        return cli_usage_error("inspect", "give a checkpoint DIR or --config-only FILE");
    if (ba.kv_type == KERN_F32 && !ba.cpu)
        return cli_usage_error("inspect", "--kv f32 is a CPU cache type (with --backend cpu)");
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
    if (budget && ba.cpu)
        rc = run_budget_cpu(&ck, &s, cfgfile ? cfgfile : dir, &ba, json);
    else if (budget)
        rc = run_budget(&ck, &s, cfgfile ? cfgfile : dir, &ba, json);
    else if (json)
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
    "       lode inspect --budget [--ctx N] [--seqs S] [--kv fp8|bf16] [--gpu-mem GB]\n"
    "                    [--chunk N] [--json] DIR | --config-only config.json\n"
    "       lode inspect --budget --backend cpu [--ctx N] [--seqs S] [--kv fp8|bf16|f32]\n"
    "                    [--threads N] [--mem GB] [--chunk N] [--json] DIR | --config-only FILE\n"
    "\n"
    "Opens the checkpoint exactly as the engine does (every tensor validated and bound)\n"
    "and prints the architecture, tensor counts and bytes by precision class, the\n"
    "weight bytes read per decoded token (dense weights + top-k average routed experts\n"
    "+ lm_head + one embedding row), KV-cache bytes per context token and the Gated\n"
    "DeltaNet state per sequence. Exit 1 with the defect named when the checkpoint is\n"
    "malformed or foreign. --config-only sizes mkmodel's recipe for a config.json\n"
    "without any weights.\n"
    "\n"
    "--budget prints the CUDA engine's GPU memory plan instead (engine/budget.c, the\n"
    "arithmetic the engine itself uses): weights by precision, the KV cache for ctx x\n"
    "seqs over the full-attention layers, DeltaNet states, the 16 snapshots per\n"
    "sequence the agent keeps, the prefill chunk's activations, attention scratch, an\n"
    "estimate for CUDA graph pools and the runtime reserve, against the GPU (GiB; the\n"
    "device's when one answers, else 48), then a verdict: fits, or what does not with\n"
    "the longest context and the most sequences that would. Exit 0 either way.\n"
    "\n"
    "--budget --backend cpu prints the CPU engine's RAM plan (engine/budget.c): the weights\n"
    "(read in place from the mmap: page cache, not heap), per sequence the KV cache at the\n"
    "context, the fp32 DeltaNet conv + recurrent states, the 16 snapshots the engine\n"
    "backend keeps and the token ids it holds; once per process the prefill chunk's\n"
    "activations and a logits row, the kernels' scratch per thread and shared work buffer,\n"
    "the engine's f32 tables and a process reserve; against MemTotal (or --mem GiB), with\n"
    "the same verdict as the GPU plan. Threads default to all cores; --snaps N changes the\n"
    "snapshots counted per sequence (0 for one-shot runs such as lode generate).\n",
    opts,
};
