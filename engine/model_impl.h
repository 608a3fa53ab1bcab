/*
 * model_impl.h - internals shared by engine/model.c (binding) and
 * engine/forward.c (compute). Not for use outside engine/.
 */
#ifndef LODE_ENGINE_MODEL_IMPL_H
#define LODE_ENGINE_MODEL_IMPL_H

#include "engine/model.h"
#include "kernels/kernels.h"

/* One decoder layer bound for the kernels. Small tensors are converted to
 * owned fp32 arrays at open time (a few KB per layer); big weights stay
 * views into the mmap. */
struct eng_layer {
    int full;                   /* 1 gated attention, 0 Gated DeltaNet */
    float *in_norm, *post_norm; /* [H], used as (1 + w) */
    /* gated attention */
    struct kern_weight q, k, v, o; /* q: [n_h * hd * (1 + gate), H] */
    float *q_norm, *k_norm;        /* [hd], (1 + w) */
    float k_scale, v_scale;        /* FP8 KV dequantization scales */
    /* Gated DeltaNet */
    struct kern_weight qkv, z, a, b, out; /* qkv [conv_ch, H], z [n_v*dv, H], a/b [n_v, H] */
    float *conv_w;                        /* [conv_ch][kw] */
    float *neg_exp_a;                     /* [n_v]: -exp(A_log) */
    float *dt_bias;                       /* [n_v] */
    float *lin_norm;                      /* [dv], plain w */
    /* MoE */
    struct kern_weight router;      /* [E, H] */
    struct kern_expert *experts;    /* [E]; owned array of views */
    struct kern_expert shared;      /* [Is, H] / [H, Is] */
    struct kern_weight shared_gate; /* [1, H] */
};

/* Opt-in decode profile (LODE_PROFILE=1): time and bytes per op class over the T == 1 steps,
 * printed to stderr by eng_close. */
enum eng_prof_op {
    PROF_EMBED,
    PROF_NORM,
    PROF_GDN_PROJ,
    PROF_GDN_CORE,
    PROF_ATTN_PROJ,
    PROF_ATTN_CORE,
    PROF_ROUTER,
    PROF_EXPERTS,
    PROF_SHARED,
    PROF_LM_HEAD,
    PROF_OTHER,
    PROF_N
};
struct eng_prof {
    int on, active; /* active: timing the current step */
    long steps;
    double total; /* seconds of whole decode steps */
    double t[PROF_N], bytes[PROF_N];
};
/* forward.c: prints the table (nothing when profiling is off or no step ran). */
void eng_prof_print(const struct eng *e);

struct eng {
    struct ckpt ck;
    struct eng_opts o;
    struct kern_cpu *kc;
    struct eng_layer *L; /* [n_layers] */
    float *final_norm;   /* [H] */
    int embed_type;      /* KERN_F32 / KERN_BF16 / KERN_F16 */
    const void *embed;   /* [V, H] */
    struct kern_weight lm_head;
    float *rope_inv; /* [rotary_dim / 2] */
    float rope_mscale;
    uint8_t id[32];
    void **owned; /* converted tensors, freed at close */
    size_t n_owned, cap_owned;
    float *work; /* forward scratch, grown on demand */
    size_t work_floats;
    eng_trace_fn trace;
    void *trace_ctx;
    int gdn_mode;
    struct engc *gpu; /* o.backend == ENG_BACKEND_CUDA: the device copy (model_cuda.c) */
    struct eng_prof prof;
};

#endif
