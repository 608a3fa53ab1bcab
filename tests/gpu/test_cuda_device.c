/* test_cuda_device.c - the GPU is visible and described (make test-gpu). */
#include "common/err.h"
#include "kernels/kernels.h"
#include "testhelp.h"

static void t_device(void)
{
    const char *why = NULL;
    if (!kern_cuda_built())
        SKIP("built without CUDA");
    int n = kern_cuda_device_count(&why);
    if (n == 0)
        SKIP("no GPU: %s", why ? why : "?");
    struct kern_gpu_info info;
    CHECK(kern_cuda_device_info(0, &info) == 0);
    printf("    device 0: %s, cc %d.%d, %d SMs, %.1f GiB (%.1f free)\n", info.name, info.cc_major,
           info.cc_minor, info.sm_count, info.total_bytes / 1073741824.0,
           info.free_bytes / 1073741824.0);
    CHECK(info.cc_major >= 8);
    CHECK(info.total_bytes > 0 && info.free_bytes <= info.total_bytes);
    CHECK(kern_cuda_device_info(n, &info) == ERR_NOTFOUND);
}

int main(void)
{
    TEST_RUN(t_device);
    TEST_END();
}
