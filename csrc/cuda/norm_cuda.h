// Interface between the CUDA host code (norm_cuda.cpp, compiled by the C++ compiler, which owns
// tensors, checks and dtype dispatch) and the kernels (norm_forward.cu / norm_backward.cu,
// compiled by nvcc, which only see raw pointers). Keeping ATen out of the .cu files keeps
// their compile time down.
//
// Launch geometry ("plans") is computed here, by plain inline functions, so that the host
// code can size the workspace and the launchers use exactly the same numbers.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

namespace cyclegan_ext {
namespace cuda {

template <typename scalar_t>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename scalar_t>
using acc_type = typename AccType<scalar_t>::type;

// Per-channel parameters, read with their strides (weight_sn = 0 for a parameter shared by
// every sample), already in the accumulation dtype. gamma(n, c) = weight[n * weight_sn + c *
// weight_sc]; a nullptr stands for the default: weight 1, bias 0, rho 1 (instance norm).
template <typename acc_t>
struct ParamView {
  const acc_t* weight;
  int64_t weight_sn, weight_sc;
  const acc_t* bias;
  int64_t bias_sn, bias_sc;
  const acc_t* rho;
  int64_t rho_s;
};

// Launch geometry of one pass over x.
//   NCHW:  a plane (n, c) of M elements is cut into `splits` chunks of `chunk` elements; one
//          block per chunk; blockIdx.x = plane * splits + split.
//   NHWC:  a sample is an (M rows) x (C channels) matrix. Threads form a tx x (threads / tx)
//          grid: tx along channel groups of `vec` channels, the rest along rows. A block covers
//          tx * vec channels (a column tile) and `chunk` rows;
//          blockIdx.x = (n * splits + split) * col_tiles + tile.
// `vec` is the number of elements per load: 16 bytes' worth when every pointer is 16-byte
// aligned and the plane size (NCHW) / channel count (NHWC) is a multiple of it, else 1.
struct Plan {
  int64_t splits;
  int64_t chunk;
  int64_t col_tiles;  // NHWC only (1 for NCHW)
  int threads;
  int tx;  // NHWC only
  int vec;
  int64_t planes_or_samples;  // N * C for NCHW, N for NHWC
  int64_t blocks() const { return splits * col_tiles * planes_or_samples; }
};

constexpr int kMaxThreads = 256;     // every pass kernel is launched with <= 256 threads
constexpr int kMinBlocks = 2;        // resident blocks per SM the pass kernels are compiled for
constexpr int kCoefThreads = 512;    // per-sample coefficient kernels
constexpr int kMaxReduceSplits = 256;  // bounds the partials a coefficient kernel combines
constexpr int64_t kNoLimit = int64_t(1) << 40;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// elems_per_thread_min / max: how much of the plane (NCHW: elements, NHWC: rows per thread
// row) one thread should at least / at most handle. max_splits bounds the number of chunks.
inline Plan make_plan(int64_t N, int64_t C, int64_t M, bool channels_last, int vec, int sm_count,
                      int64_t min_per_thread, int64_t max_per_thread, int64_t max_splits) {
  Plan p;
  p.vec = vec;
  const int64_t target_blocks = 8 * static_cast<int64_t>(std::max(sm_count, 1));
  int64_t units;          // blocks that exist without splitting
  int64_t per_block_min;  // elements (NCHW) or rows (NHWC)
  int64_t per_block_max;
  int64_t granule;        // chunk must be a multiple of this
  if (!channels_last) {
    const int64_t groups = ceil_div(M, vec);
    p.threads = static_cast<int>(std::min<int64_t>(kMaxThreads, std::max<int64_t>(32, ceil_div(groups, 32) * 32)));
    p.tx = p.threads;
    p.col_tiles = 1;
    p.planes_or_samples = N * C;
    units = N * C;
    per_block_min = p.threads * vec * min_per_thread;
    per_block_max = p.threads * vec * max_per_thread;
    granule = vec;
  } else {
    const int64_t groups = ceil_div(C, vec);
    int tx = 1;
    while (tx < 32 && tx < groups) tx *= 2;
    p.threads = kMaxThreads;
    p.tx = tx;
    p.col_tiles = ceil_div(groups, tx);
    p.planes_or_samples = N;
    units = N * p.col_tiles;
    const int64_t ty = kMaxThreads / tx;
    per_block_min = ty * min_per_thread;
    per_block_max = ty * max_per_thread;
    granule = 1;
  }
  const int64_t forced = ceil_div(M, per_block_max);          // at most per_block_max per block
  const int64_t wanted = ceil_div(target_blocks, units);       // to fill the GPU
  const int64_t allowed = std::max<int64_t>(1, M / per_block_min);  // at least per_block_min per block
  int64_t splits = std::max<int64_t>(forced, std::min(wanted, allowed));
  splits = std::max<int64_t>(1, std::min(splits, max_splits));
  int64_t chunk = ceil_div(ceil_div(M, splits), granule) * granule;
  p.chunk = chunk;
  p.splits = ceil_div(M, chunk);  // every split is non-empty: split * chunk < M
  return p;
}

// The statistics / gradient-sum pass: few partials per plane (they are combined by one block
// per sample), as many blocks as needed to fill the GPU.
inline Plan reduction_plan(int64_t N, int64_t C, int64_t M, bool channels_last, int vec, int sm_count) {
  return make_plan(N, C, M, channels_last, vec, sm_count, 4, kNoLimit, kMaxReduceSplits);
}

// The elementwise apply pass: each block handles a bounded amount of the plane.
inline Plan apply_plan(int64_t N, int64_t C, int64_t M, bool channels_last, int vec, int sm_count) {
  return make_plan(N, C, M, channels_last, vec, sm_count, 2, 16, kNoLimit);
}

// Workspace (in accumulation-dtype elements) the launchers need: two partials per (plane,
// split) plus three coefficients per plane.
inline int64_t workspace_elems(int64_t N, int64_t C, const Plan& reduction) {
  return N * C * (2 * reduction.splits + 3);
}

template <typename scalar_t>
struct ForwardArgs {
  using acc_t = acc_type<scalar_t>;
  const scalar_t* x;
  scalar_t* y;
  ParamView<acc_t> params;
  acc_t* mean_c;  // (N, C)
  acc_t* rstd_c;  // (N, C)
  acc_t* mean_l;  // (N,)
  acc_t* rstd_l;  // (N,)
  int64_t N, C, M;
  bool channels_last;
  bool unbiased;
  acc_t eps;
  int64_t activation;
  acc_t negative_slope;
};

template <typename scalar_t>
struct BackwardArgs {
  using acc_t = acc_type<scalar_t>;
  const scalar_t* grad_out;  // in x's layout
  const scalar_t* x;
  scalar_t* grad_x;
  ParamView<acc_t> params;
  const acc_t* mean_c;
  const acc_t* rstd_c;
  const acc_t* mean_l;
  const acc_t* rstd_l;
  acc_t* grad_weight;  // (N, C)
  acc_t* grad_bias;    // (N, C)
  acc_t* grad_rho;     // (N, C), zeros when params.rho == nullptr
  int64_t N, C, M;
  bool channels_last;
  bool unbiased;
  int64_t activation;
  acc_t negative_slope;
};

// Enqueue the whole forward / backward on `stream`. `workspace` holds workspace_elems(...)
// elements. Both check every launch.
template <typename scalar_t>
void launch_forward(const ForwardArgs<scalar_t>& args, const Plan& reduction, const Plan& apply,
                    acc_type<scalar_t>* workspace, cudaStream_t stream);
template <typename scalar_t>
void launch_backward(const BackwardArgs<scalar_t>& args, const Plan& reduction, const Plan& apply,
                     acc_type<scalar_t>* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace cyclegan_ext
