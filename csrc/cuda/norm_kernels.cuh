// Device helpers shared by norm_forward.cu and norm_backward.cu: vector loads, warp / block
// reductions (sums and Chan-combined moments), per-channel parameter access.
#pragma once

#include "../norm_math.h"
#include "norm_cuda.h"

#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <cuda_runtime.h>

#include <cstring>

namespace cyclegan_ext {
namespace cuda {
namespace detail {

// Elements per 16-byte load.
template <typename scalar_t>
constexpr int vec_width() {
  return static_cast<int>(16 / sizeof(scalar_t));
}

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

// 16-byte vectors move as one 128-bit load / store instruction. `p` must be a global-memory
// address aligned to sizeof(Vec<T, V>).
template <int V, typename T>
__device__ __forceinline__ Vec<T, V> load_vec(const T* p) {
  if constexpr (sizeof(Vec<T, V>) == 16) {
    const uint4 bits = *reinterpret_cast<const uint4*>(p);
    Vec<T, V> v;
    memcpy(&v, &bits, 16);
    return v;
  } else {
    return *reinterpret_cast<const Vec<T, V>*>(p);
  }
}

template <int V, typename T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, V>& v) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(Vec<T, V>) == 16) {
    uint4 bits;
    memcpy(&bits, &v, 16);
    // One 16-byte store (nvcc otherwise splits this store into per-element stores in some
    // kernels); the intrinsic takes the generic pointer and emits st.global.wb.v4.
    __stwb(reinterpret_cast<uint4*>(p), bits);
    return;
  }
#endif
  {
    *reinterpret_cast<Vec<T, V>*>(p) = v;
  }
}

// What one thread of a channels_last (NHWC) kernel owns. The block index encodes (sample n,
// row chunk `split` of `chunk` rows, column tile); within the block, tx picks a vector of V
// channels and ty a lane of rows (rows ty, ty + ty_count, ...).
struct NhwcPosition {
  int64_t n, split, c0, row_begin, row_end;
  int tx, ty, ty_count;
};

template <int V>
__device__ __forceinline__ NhwcPosition nhwc_position(int64_t M, int64_t chunk, int64_t splits, int64_t col_tiles,
                                                      int tx_count) {
  NhwcPosition p;
  const int64_t tile = blockIdx.x % col_tiles;
  const int64_t rest = blockIdx.x / col_tiles;
  p.split = rest % splits;
  p.n = rest / splits;
  p.tx = static_cast<int>(threadIdx.x % tx_count);
  p.ty = static_cast<int>(threadIdx.x / tx_count);
  p.ty_count = static_cast<int>(blockDim.x / tx_count);
  p.c0 = (tile * tx_count + p.tx) * V;
  p.row_begin = p.split * chunk;
  p.row_end = p.row_begin + chunk < M ? p.row_begin + chunk : M;
  return p;
}

// Loads rows r0, r0 + stride, ... (U of them, those before row_end) of a channels_last
// column of V channels: U independent 16-byte loads in flight before any is used.
template <int U, int V, typename T>
__device__ __forceinline__ void load_rows(const T* column, int64_t C, int64_t r0, int64_t stride, int64_t row_end,
                                          Vec<T, V> (&buf)[U]) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t r = r0 + u * stride;
    if (r < row_end) buf[u] = load_vec<V>(column + r * C);
  }
}

constexpr unsigned kFullMask = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(kFullMask, v, offset);
  return v;
}

// Chan combination across a warp; the result is in lane 0.
template <typename T>
__device__ __forceinline__ void warp_moments(T& mean, T& m2, T& count) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const T mean_b = __shfl_down_sync(kFullMask, mean, offset);
    const T m2_b = __shfl_down_sync(kFullMask, m2, offset);
    const T count_b = __shfl_down_sync(kFullMask, count, offset);
    chan_combine(mean, m2, count, mean_b, m2_b, count_b);
  }
}

// Block-wide reductions. Every thread of the block must call them (blockDim.x a multiple of
// 32, at most 1024). The result is valid in thread 0 only. `scratch` is shared memory of at
// least 32 * (number of values) elements; the caller must __syncthreads() before reusing it.
template <typename T>
__device__ __forceinline__ void block_moments(T& mean, T& m2, T& count, T* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  warp_moments(mean, m2, count);
  if (warps == 1) return;
  if (lane == 0) {
    scratch[warp] = mean;
    scratch[32 + warp] = m2;
    scratch[64 + warp] = count;
  }
  __syncthreads();
  if (warp == 0) {
    if (lane < warps) {
      mean = scratch[lane];
      m2 = scratch[32 + lane];
      count = scratch[64 + lane];
    } else {
      mean = T(0);
      m2 = T(0);
      count = T(0);
    }
    warp_moments(mean, m2, count);
  }
}

template <typename T>
__device__ __forceinline__ void block_sum2(T& a, T& b, T* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  a = warp_sum(a);
  b = warp_sum(b);
  if (warps == 1) return;
  if (lane == 0) {
    scratch[warp] = a;
    scratch[32 + warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < warps ? scratch[lane] : T(0);
    b = lane < warps ? scratch[32 + lane] : T(0);
    a = warp_sum(a);
    b = warp_sum(b);
  }
}

// As block_sum2, but every thread gets the result. Contains the __syncthreads() that make
// `scratch` reusable afterwards.
template <typename T>
__device__ __forceinline__ void block_allsum2(T& a, T& b, T* scratch) {
  __syncthreads();  // earlier users of scratch are done
  block_sum2(a, b, scratch);
  __syncthreads();  // everyone has read scratch in block_sum2
  if (threadIdx.x == 0) {
    scratch[0] = a;
    scratch[1] = b;
  }
  __syncthreads();
  a = scratch[0];
  b = scratch[1];
}

template <typename acc_t>
__device__ __forceinline__ acc_t param_gamma(const ParamView<acc_t>& p, int64_t n, int64_t c) {
  return p.weight == nullptr ? acc_t(1) : p.weight[n * p.weight_sn + c * p.weight_sc];
}
template <typename acc_t>
__device__ __forceinline__ acc_t param_beta(const ParamView<acc_t>& p, int64_t n, int64_t c) {
  return p.bias == nullptr ? acc_t(0) : p.bias[n * p.bias_sn + c * p.bias_sc];
}
template <typename acc_t>
__device__ __forceinline__ acc_t param_rho(const ParamView<acc_t>& p, int64_t c) {
  return p.rho == nullptr ? acc_t(1) : p.rho[c * p.rho_s];
}

// The forward's y = a * (x - mu_c) + b coefficients of channel (n, c), from saved statistics.
template <typename acc_t>
__device__ __forceinline__ void channel_ab(const ParamView<acc_t>& p, int64_t n, int64_t c, acc_t mu_c,
                                           acc_t s_c, acc_t mu_l, acc_t s_l, acc_t& a, acc_t& b) {
  forward_coefficients(param_gamma(p, n, c), param_beta(p, n, c), param_rho(p, c), mu_c, s_c, mu_l, s_l,
                       &a, &b);
}

// Number of elements (NCHW) / rows (NHWC) of split `s`.
__device__ __forceinline__ int64_t split_count(int64_t s, int64_t chunk, int64_t M) {
  const int64_t begin = s * chunk;
  const int64_t end = begin + chunk < M ? begin + chunk : M;
  return end - begin;
}

}  // namespace detail
}  // namespace cuda
}  // namespace cyclegan_ext
