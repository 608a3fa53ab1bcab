/* backend.c - what the CPU-only build answers for the CUDA entry points. */
#include "kernels/kernels.h"

#include "common/err.h"

#if !LODE_CUDA
int kern_cuda_built(void) { return 0; }

int kern_cuda_device_count(const char **why)
{
    if (why)
        *why = "built without CUDA (make CUDA=0 or no nvcc at build time)";
    return 0;
}

int kern_cuda_device_info(int dev, struct kern_gpu_info *info)
{
    return err_set(ERR_UNSUPPORTED, "built without CUDA");
}
#endif

/* ---- kernels_cuda.h (device, buffers, linear layers, MoE) */
#if !LODE_CUDA
static int kcu_no_cuda(const char *what)
{
    return err_set(ERR_UNSUPPORTED, "%s: built without CUDA", what);
}

int kcu_init(int dev) { return kcu_no_cuda("cuda init"); }
void kcu_shutdown(void) {}
void *kcu_stream(void) { return NULL; }
int kcu_sync(void) { return kcu_no_cuda("cuda sync"); }

int kcu_alloc(struct kcu_buf *b, size_t bytes, const char *what)
{
    b->ptr = NULL;
    b->bytes = 0;
    return kcu_no_cuda("cuda alloc");
}

void kcu_free(struct kcu_buf *b) {}
int kcu_upload(void *dst_dev, const void *src_host, size_t bytes)
{
    return kcu_no_cuda("cuda upload");
}
int kcu_download(void *dst_host, const void *src_dev, size_t bytes)
{
    return kcu_no_cuda("cuda download");
}
int kcu_fill(void *dst_dev, int byte, size_t bytes) { return kcu_no_cuda("cuda fill"); }
int kcu_copy(void *dst_dev, const void *src_dev, size_t bytes, void *stream)
{
    return kcu_no_cuda("cuda copy");
}
double kcu_peak_gbps(void) { return 0; }
int kcu_mem_info(size_t *free_bytes, size_t *total_bytes) { return kcu_no_cuda("cuda mem info"); }
int kcu_scratch(size_t bytes, void **out) { return kcu_no_cuda("cuda scratch"); }
int kcu_host_alloc(void **out, size_t bytes)
{
    *out = NULL;
    return kcu_no_cuda("cuda pinned memory");
}
void kcu_host_free(void *p) {}
int kcu_copy_async(void *dst, const void *src, size_t bytes, void *stream)
{
    return kcu_no_cuda("cuda copy");
}
int kcu_stream_sync(void *stream) { return kcu_no_cuda("cuda sync"); }
int kcu_capture_begin(void *stream) { return kcu_no_cuda("cuda graph"); }
int kcu_capture_end(void *stream, int ok, void **exec)
{
    *exec = NULL;
    return kcu_no_cuda("cuda graph");
}
int kcu_graph_launch(void *exec, void *stream) { return kcu_no_cuda("cuda graph"); }
void kcu_graph_free(void *exec) {}
unsigned long long kcu_alloc_epoch(void) { return 0; }
void kcu_epoch_bump(void) {}

int kcu_weight_upload(struct kcu_weight *dw, const struct kern_weight *w, const char *name)
{
    return kcu_no_cuda("cuda weight upload");
}
void kcu_weight_free(struct kcu_weight *dw) {}
int kcu_matmul(const struct kcu_weight *w, const float *x, long T, float *y, void *stream)
{
    return kcu_no_cuda("cuda matmul");
}

int kcu_experts_upload(struct kcu_experts *d, const struct kern_expert *ex, int n, const char *name)
{
    return kcu_no_cuda("cuda experts upload");
}
void kcu_experts_free(struct kcu_experts *d) {}
int kcu_moe_route(const float *logits, long T, int E, int k, int *idx, float *wt, void *stream)
{
    return kcu_no_cuda("cuda moe route");
}
int kcu_moe(const struct kcu_moe *m, void *stream) { return kcu_no_cuda("cuda moe"); }
#endif

/* ---- kernels_cuda_seq.h (DeltaNet and attention) */
#if !LODE_CUDA
static int no_cuda_seq(const char *what)
{
    return err_set(ERR_UNSUPPORTED, "%s: built without CUDA", what);
}

int kcs_conv1d_silu(float *y, const float *x, long ldx, float *state, const float *w, long T,
                    long C, int kw, void *stream)
{
    return no_cuda_seq("cuda conv1d");
}
int kcs_gdn_gates(float *g, float *beta, const float *a, const float *b, const float *neg_exp_a,
                  const float *dt_bias, long T, int n_v, void *stream)
{
    return no_cuda_seq("cuda deltanet gates");
}
int kcs_gdn_recurrent(const struct kern_gdn *a, void *stream)
{
    return no_cuda_seq("cuda deltanet");
}
int kcs_gdn_chunked(const struct kern_gdn *a, void *stream) { return no_cuda_seq("cuda deltanet"); }
int kcs_rmsnorm_gated(float *y, const float *x, const float *z, const float *w, long rows, long n,
                      float eps, void *stream)
{
    return no_cuda_seq("cuda gated rmsnorm");
}
int kcs_gdn_decode(const struct kcs_gdn_step *s, void *stream)
{
    return no_cuda_seq("cuda deltanet decode");
}
int kcs_attn_prep(const struct kcs_attn_prep *p, void *stream)
{
    return no_cuda_seq("cuda attention prep");
}
size_t kcs_attention_work_bytes(const struct kern_attn *a) { return 0; }
int kcs_attention(const struct kern_attn *a, const float *gate, long g_tok, long g_head, void *work,
                  size_t work_bytes, void *stream)
{
    return no_cuda_seq("cuda attention");
}
int kcs_attention_dpos(const struct kern_attn *a, const long *dpos, const float *gate, long g_tok,
                       long g_head, void *work, size_t work_bytes, void *stream)
{
    return no_cuda_seq("cuda attention");
}
#endif

/* ---- kernels_cuda_misc.h (embedding, norm, add, argmax, ordered copies) */
#if !LODE_CUDA
static int no_cuda_misc(const char *what)
{
    return err_set(ERR_UNSUPPORTED, "%s: built without CUDA", what);
}

int kcm_embed(float *x, const void *table, int type, long vocab, long hidden, const int32_t *tok,
              long T, void *stream)
{
    return no_cuda_misc("cuda embed");
}
int kcm_rmsnorm(float *y, long ldy, const float *x, long ldx, const float *w, long rows, long n,
                float eps, void *stream)
{
    return no_cuda_misc("cuda rmsnorm");
}
int kcm_add(float *x, const float *y, size_t n, void *stream) { return no_cuda_misc("cuda add"); }
int kcm_expert_mix(float *y, const float *ye, const int *idx, const float *wt, long T, int k,
                   int expert, long hidden, void *stream)
{
    return no_cuda_misc("cuda expert mix");
}
int kcm_argmax(int32_t *out, const float *x, long rows, long n, void *stream)
{
    return no_cuda_misc("cuda argmax");
}
int kcm_h2d(void *dst_dev, const void *src_host, size_t bytes, void *stream)
{
    return no_cuda_misc("cuda upload");
}
int kcm_d2h(void *dst_host, const void *src_dev, size_t bytes, void *stream)
{
    return no_cuda_misc("cuda download");
}
#endif
