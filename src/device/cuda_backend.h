/* The CUDA backend as the rest of kiln sees it (backend.c, the NCCL layer): the backend for a
 * precision on the chosen GPU, where a pointer lives, and kiln_status checks for CUDA and
 * cuBLAS calls made from host code. Built only with KILN_HAVE_CUDA. */
#ifndef KILN_DEVICE_CUDA_BACKEND_H
#define KILN_DEVICE_CUDA_BACKEND_H
#include <cuda_runtime_api.h>
#include "kiln/backend.h"

/* The process's CUDA backend for precision prec (one GPU per process: the first call picks
 * device gpu, or the local rank's turn among the visible devices when gpu < 0; a later call
 * naming another device is an error). KILN_ERR_DEVICE "no usable GPU (...)" when CUDA finds
 * no device or no driver. */
kiln_status kiln_cuda_backend(kiln_precision prec, int gpu, const kiln_backend **out);
/* 1 if p is device (or managed) memory. */
int kiln_cuda_is_device_pointer(const void *p);
/* The compute stream every op of the backend runs on (NULL before the backend exists). */
cudaStream_t kiln_cuda_compute_stream(void);

#define KILN_CUDA_CHECK(call)                                                              \
    do {                                                                                   \
        cudaError_t kiln_e_ = (call);                                                      \
        if (kiln_e_ != cudaSuccess)                                                        \
            return KILN_ERROR(KILN_ERR_DEVICE, "%s failed: %s", #call,                     \
                              cudaGetErrorString(kiln_e_));                                \
    } while (0)

#endif
