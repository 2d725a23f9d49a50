/* Choosing a backend by name: "cpu", or "cuda[:N]" where kao is built with CUDA; and
 * "cpu-detached", the CPU as a stand-in device (backend.h), with which the tests drive kao's
 * device paths on machines without a GPU. */
#include <stdlib.h>
#include <string.h>

#include "kao/backend.h"
#include "kao/bf16.h"
#include "kao/util.h"
#ifdef KAO_HAVE_CUDA
#include "kao/cuda.h"
#endif

/* "cuda" → 0, "cuda:N" → N; -1 when name is not a CUDA device name. */
static int cuda_index(const char *name) {
    if (strncmp(name, "cuda", 4)) return -1;
    if (name[4] == '\0') return 0;
    if (name[4] != ':' || name[5] < '0' || name[5] > '9') return -1;
    char *end;
    long n = strtol(name + 5, &end, 10);
    return *end || n > 64 ? -1 : (int)n;
}

int kao_backend_open(kao_backend **out, const char *device) {
    *out = NULL;
    if (!strcmp(device, "cpu") || !strcmp(device, "cpu-detached")) {
        *out = device[3] ? kao_backend_cpu_detached() : kao_backend_cpu();
        return KAO_OK;
    }
    int index = cuda_index(device);
    if (index < 0) return kao_fail("unknown device '%s' (expected cpu, cuda or cuda:N)", device);
#ifdef KAO_HAVE_CUDA
    char why[256];
    if (!kao_cuda_available(why, sizeof why)) return kao_fail("device %s: no usable GPU (%s)", device, why);
    int count = kao_cuda_device_count();
    if (index >= count) return kao_fail("device %s: this machine has %d GPU%s", device, count, count == 1 ? "" : "s");
    *out = kao_backend_cuda(index);
    return KAO_OK;
#else
    return kao_fail("device %s: this kao was built without CUDA (configure with -DKAO_CUDA=ON)", device);
#endif
}

/* In kao_precision's order (config.c's train.precision lists the same words). */
static const char *const precision_names[] = {"fp32", "tf32", "bf16"};

int kao_precision_parse(kao_precision *out, const char *name) {
    for (int p = 0; p < (int)(sizeof precision_names / sizeof *precision_names); p++)
        if (!strcmp(name, precision_names[p])) {
            *out = (kao_precision)p;
            return KAO_OK;
        }
    return kao_fail("unknown precision '%s' (expected fp32, tf32 or bf16)", name);
}

const char *kao_precision_name(kao_precision precision) { return precision_names[precision]; }

void kao_map_to_host(kao_backend *be, float *host_dst, const kao_map *src, size_t n) {
    if (be->map_bytes == sizeof(float)) {
        be->to_host(be, host_dst, src, n * sizeof(float));
        return;
    }
    uint16_t *raw = kao_malloc(n * sizeof(uint16_t) + 1, "bf16 map");
    be->to_host(be, raw, src, n * sizeof(uint16_t));
    kao_bf16_to_floats(host_dst, raw, n);
    free(raw);
}

void kao_backend_free(kao_backend *be) {
    if (be) be->destroy(be);
}
