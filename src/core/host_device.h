/* KILN_HOST_DEVICE marks inline functions that compile for both the CPU and CUDA kernels
 * (philox.h, bf16.h, src/device/update_rules.h): one source for a formula both backends use. */
#ifndef KILN_CORE_HOST_DEVICE_H
#define KILN_CORE_HOST_DEVICE_H

#ifdef __CUDACC__
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif

#endif
