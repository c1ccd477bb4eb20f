// CALIBENCH_HD marks per-element functions that both the host code and the CUDA kernels call:
// `__host__ __device__` under nvcc, plain `inline` under g++. Shared by host/ and kernels/.
#pragma once

#if defined(__CUDACC__)
#define CALIBENCH_HD __host__ __device__ __forceinline__
#else
#define CALIBENCH_HD inline
#endif
