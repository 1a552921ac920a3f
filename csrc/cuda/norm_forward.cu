// Forward CUDA kernels of the fused AdaLIN / LIN / instance norm:
//   1. statistics pass: per (n, c) plane (or per chunk of a plane, when the planes alone do not
//      fill the GPU) the moments (mean, M2) of x, Welford / Chan, written as partials;
//   2. coefficient kernel, one block per sample: Chan-combines the partials into mean_c / M2_c,
//      derives the layer statistics and the apply coefficients a, b (norm_math.h); where the
//      float32 moments of the sample overflowed or underflowed (moments_reliable), it first
//      recomputes them from x in double (slow; only such data pays for it);
//   3. apply pass: y = act(a * (x - mean_c) + b), 16-byte vectorised where possible.
// NCHW planes are contiguous; channels_last (NHWC) samples are (H*W) x C row-major matrices,
// where threads own channels and walk down the rows.
#include "norm_kernels.cuh"

namespace cyclegan_ext {
namespace cuda {
namespace {

using namespace detail;

constexpr int kUnroll = 4;  // independent 16-byte loads in flight per thread

// Adds the V values of one vector to a running (mean, M2, count): exact two-pass moments of
// the vector, then one Chan combination (one division per vector, not per element).
template <typename acc_t, typename scalar_t, int V>
__device__ __forceinline__ void add_vector(const Vec<scalar_t, V>& vec, acc_t& mean, acc_t& m2, acc_t& count) {
  acc_t vals[V];
  acc_t sum = acc_t(0);
#pragma unroll
  for (int k = 0; k < V; ++k) {
    vals[k] = static_cast<acc_t>(vec.v[k]);
    sum += vals[k];
  }
  const acc_t local_mean = sum * (acc_t(1) / acc_t(V));
  acc_t local_m2 = acc_t(0);
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const acc_t d = vals[k] - local_mean;
    local_m2 += d * d;
  }
  chan_combine(mean, m2, count, local_mean, local_m2, acc_t(V));
}

// ---------------------------------------------------------------------------------------------
// NCHW

template <typename scalar_t, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    stats_nchw_kernel(const scalar_t* __restrict__ x, acc_type<scalar_t>* __restrict__ part_mean,
                      acc_type<scalar_t>* __restrict__ part_m2, int64_t M, int64_t chunk, int64_t splits) {
  using acc_t = acc_type<scalar_t>;
  __shared__ acc_t scratch[96];
  const int64_t plane = blockIdx.x / splits;
  const int64_t split = blockIdx.x - plane * splits;
  const int64_t begin = split * chunk;
  const int64_t end = begin + chunk < M ? begin + chunk : M;
  const scalar_t* xp = x + plane * M;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * V;

  acc_t mean = acc_t(0), m2 = acc_t(0), count = acc_t(0);
  for (int64_t i0 = begin + static_cast<int64_t>(threadIdx.x) * V; i0 < end; i0 += stride * kUnroll) {
    Vec<scalar_t, V> buf[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      if (i < end) buf[u] = load_vec<V>(xp + i);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (i0 + u * stride < end) add_vector<acc_t>(buf[u], mean, m2, count);
    }
  }
  block_moments(mean, m2, count, scratch);
  if (threadIdx.x == 0) {
    part_mean[blockIdx.x] = mean;  // blockIdx.x == plane * splits + split
    part_m2[blockIdx.x] = m2;
  }
}

template <typename scalar_t, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    apply_nchw_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                      const acc_type<scalar_t>* __restrict__ mean_c, const acc_type<scalar_t>* __restrict__ coef_a,
                      const acc_type<scalar_t>* __restrict__ coef_b, int64_t M, int64_t chunk, int64_t splits,
                      int64_t activation, acc_type<scalar_t> slope) {
  using acc_t = acc_type<scalar_t>;
  const int64_t plane = blockIdx.x / splits;
  const int64_t split = blockIdx.x - plane * splits;
  const int64_t begin = split * chunk;
  const int64_t end = begin + chunk < M ? begin + chunk : M;
  const acc_t mu = mean_c[plane];
  const acc_t a = coef_a[plane];
  const acc_t b = coef_b[plane];
  const scalar_t* xp = x + plane * M;
  scalar_t* yp = y + plane * M;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * V;

  for (int64_t i0 = begin + static_cast<int64_t>(threadIdx.x) * V; i0 < end; i0 += stride * kUnroll) {
    Vec<scalar_t, V> buf[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      if (i < end) buf[u] = load_vec<V>(xp + i);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      if (i < end) {
        Vec<scalar_t, V> out;
#pragma unroll
        for (int k = 0; k < V; ++k) {
          const acc_t v = a * (static_cast<acc_t>(buf[u].v[k]) - mu) + b;
          out.v[k] = static_cast<scalar_t>(activate(v, activation, slope));
        }
        store_vec<V>(yp + i, out);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// channels_last (NHWC): per sample an M x C row-major matrix.

template <typename scalar_t, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    stats_nhwc_kernel(const scalar_t* __restrict__ x, acc_type<scalar_t>* __restrict__ part_mean,
                      acc_type<scalar_t>* __restrict__ part_m2, int64_t C, int64_t M, int64_t chunk,
                      int64_t splits, int64_t col_tiles, int tx_count) {
  using acc_t = acc_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* sh_mean = reinterpret_cast<acc_t*>(smem_raw);  // [blockDim.x][V]
  acc_t* sh_m2 = sh_mean + blockDim.x * V;                // [blockDim.x][V]
  acc_t* sh_count = sh_m2 + blockDim.x * V;               // [blockDim.x]

  const NhwcPosition pos = nhwc_position<V>(M, chunk, splits, col_tiles, tx_count);
  const int64_t n = pos.n, split = pos.split, c0 = pos.c0, row_begin = pos.row_begin, row_end = pos.row_end;
  const int tx = pos.tx, ty = pos.ty, ty_count = pos.ty_count;
  const bool active = c0 < C;  // V divides C when V > 1

  acc_t mean[V], m2[V];
#pragma unroll
  for (int k = 0; k < V; ++k) mean[k] = m2[k] = acc_t(0);
  acc_t count = acc_t(0);
  if (active) {
    const scalar_t* base = x + n * M * C + c0;
    const int64_t row_stride = ty_count;
    for (int64_t r0 = row_begin + ty; r0 < row_end; r0 += row_stride * kUnroll) {
      Vec<scalar_t, V> buf[kUnroll];
      load_rows(base, C, r0, row_stride, row_end, buf);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (r0 + u * row_stride < row_end) {
          // Welford, one row at a time: the count is shared by the V channels.
          count += acc_t(1);
          const acc_t inv = acc_t(1) / count;
#pragma unroll
          for (int k = 0; k < V; ++k) {
            const acc_t v = static_cast<acc_t>(buf[u].v[k]);
            const acc_t d = v - mean[k];
            mean[k] += d * inv;
            m2[k] += d * (v - mean[k]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) {
    sh_mean[threadIdx.x * V + k] = mean[k];
    sh_m2[threadIdx.x * V + k] = m2[k];
  }
  sh_count[threadIdx.x] = count;
  __syncthreads();
  if (ty == 0 && active) {
    for (int j = 1; j < ty_count; ++j) {
      const int idx = j * tx_count + tx;
      const acc_t count_b = sh_count[idx];
#pragma unroll
      for (int k = 0; k < V; ++k) {
        acc_t count_k = count;
        chan_combine(mean[k], m2[k], count_k, sh_mean[idx * V + k], sh_m2[idx * V + k], count_b);
      }
      count += count_b;
    }
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int64_t plane = n * C + c0 + k;
      part_mean[plane * splits + split] = mean[k];
      part_m2[plane * splits + split] = m2[k];
    }
  }
}

template <typename scalar_t, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    apply_nhwc_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                      const acc_type<scalar_t>* __restrict__ mean_c, const acc_type<scalar_t>* __restrict__ coef_a,
                      const acc_type<scalar_t>* __restrict__ coef_b, int64_t C, int64_t M, int64_t chunk,
                      int64_t splits, int64_t col_tiles, int tx_count, int64_t activation,
                      acc_type<scalar_t> slope) {
  using acc_t = acc_type<scalar_t>;
  const NhwcPosition pos = nhwc_position<V>(M, chunk, splits, col_tiles, tx_count);
  const int64_t n = pos.n, c0 = pos.c0, row_begin = pos.row_begin, row_end = pos.row_end;
  const int ty = pos.ty, ty_count = pos.ty_count;
  if (c0 >= C) return;  // no block-wide synchronisation below

  acc_t mu[V], a[V], b[V];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int64_t plane = n * C + c0 + k;
    mu[k] = mean_c[plane];
    a[k] = coef_a[plane];
    b[k] = coef_b[plane];
  }
  const scalar_t* xbase = x + n * M * C + c0;
  scalar_t* ybase = y + n * M * C + c0;
  const int64_t row_stride = ty_count;
  for (int64_t r0 = row_begin + ty; r0 < row_end; r0 += row_stride * kUnroll) {
    Vec<scalar_t, V> buf[kUnroll];
    load_rows(xbase, C, r0, row_stride, row_end, buf);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t r = r0 + u * row_stride;
      if (r < row_end) {
        Vec<scalar_t, V> out;
#pragma unroll
        for (int k = 0; k < V; ++k) {
          const acc_t v = a[k] * (static_cast<acc_t>(buf[u].v[k]) - mu[k]) + b[k];
          out.v[k] = static_cast<scalar_t>(activate(v, activation, slope));
        }
        store_vec<V>(ybase + r * C, out);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Per-sample coefficients: one block per sample.

// Exact mean and M2 of x[0], x[stride], ... (M values) in double, by one warp: corrected
// two-pass, as wide_moments in csrc/cpu/fused_norm_cpu.cpp. The result is in lane 0.
template <typename scalar_t>
__device__ void warp_wide_moments(const scalar_t* x, int64_t stride, int64_t M, double& mean, double& m2) {
  using acc_t = acc_type<scalar_t>;
  const int lane = threadIdx.x & 31;
  double sum = 0.0;
  for (int64_t i = lane; i < M; i += 32) sum += static_cast<double>(static_cast<acc_t>(x[i * stride]));
  const double mu = __shfl_sync(kFullMask, warp_sum(sum), 0) / static_cast<double>(M);
  double d = 0.0, q = 0.0;
  for (int64_t i = lane; i < M; i += 32) {
    const double a = static_cast<double>(static_cast<acc_t>(x[i * stride])) - mu;
    d += a;
    q += a * a;
  }
  d = warp_sum(d);
  q = warp_sum(q);
  corrected_two_pass(mu, d, q, static_cast<double>(M), &mean, &m2);
}

// All statistics of sample n recomputed in double, one warp per channel, the layer moments
// Chan-combined over the channels (the M2_L of sample_statistics): as wide_sample_statistics
// in csrc/cpu/fused_norm_cpu.cpp. Writes the final mean_c and rstd_c of the sample; every
// thread gets mean_l and rstd_l. All threads of the block must call it.
template <typename scalar_t>
__device__ void wide_sample_statistics(const scalar_t* __restrict__ x, bool channels_last, int64_t n, int64_t C,
                                       int64_t M, bool unbiased, float eps, float* __restrict__ mean_c,
                                       float* __restrict__ rstd_c, float& mean_l, float& rstd_l) {
  __shared__ double scratch[96];
  __shared__ float layer[2];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  const double u = unbiased ? 1.0 : 0.0;
  const double weps = static_cast<double>(eps);
  double mean = 0.0, m2 = 0.0, count = 0.0;  // the moments of this warp's channels, in lane 0
  for (int64_t c = warp; c < C; c += warps) {
    const int64_t plane = n * C + c;
    const scalar_t* xc = channels_last ? x + n * M * C + c : x + plane * M;
    double mean_w, m2_w;
    warp_wide_moments(xc, channels_last ? C : 1, M, mean_w, m2_w);
    if (lane == 0) {
      mean_c[plane] = narrow<float>(mean_w);
      rstd_c[plane] = narrow<float>(rstd_from_m2(m2_w, static_cast<double>(M) - u, weps));
      chan_combine(mean, m2, count, mean_w, m2_w, static_cast<double>(M));
    }
  }
  block_moments(mean, m2, count, scratch);
  if (threadIdx.x == 0) {
    layer[0] = narrow<float>(mean);
    layer[1] = narrow<float>(rstd_from_m2(m2, static_cast<double>(M) * static_cast<double>(C) - u, weps));
  }
  __syncthreads();  // also publishes mean_c / rstd_c to the block
  mean_l = layer[0];
  rstd_l = layer[1];
}

template <typename scalar_t>
__global__ void __launch_bounds__(kCoefThreads)
    forward_coef_kernel(const scalar_t* __restrict__ x, bool channels_last,
                        const acc_type<scalar_t>* __restrict__ part_mean,
                        const acc_type<scalar_t>* __restrict__ part_m2, int64_t splits, int64_t chunk, int64_t C,
                        int64_t M, ParamView<acc_type<scalar_t>> params, bool unbiased, acc_type<scalar_t> eps,
                        acc_type<scalar_t>* __restrict__ mean_c, acc_type<scalar_t>* __restrict__ rstd_c,
                        acc_type<scalar_t>* __restrict__ mean_l, acc_type<scalar_t>* __restrict__ rstd_l,
                        acc_type<scalar_t>* __restrict__ coef_a, acc_type<scalar_t>* __restrict__ coef_b) {
  using acc_t = acc_type<scalar_t>;
  __shared__ acc_t scratch[96];
  const int64_t n = blockIdx.x;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  const acc_t u = unbiased ? acc_t(1) : acc_t(0);

  // 1. Per channel (one warp each): Chan-combine the partials into mean_c and M2_c (M2_c is
  //    parked in rstd_c until step 3).
  bool reliable = true;  // as sample_statistics reports it
  acc_t sum_mean = acc_t(0), sum_m2 = acc_t(0);
  for (int64_t c = warp; c < C; c += warps) {
    const int64_t plane = n * C + c;
    acc_t mean = acc_t(0), m2 = acc_t(0), count = acc_t(0);
    for (int64_t s = lane; s < splits; s += 32) {
      chan_combine(mean, m2, count, part_mean[plane * splits + s], part_m2[plane * splits + s],
                   static_cast<acc_t>(split_count(s, chunk, M)));
    }
    warp_moments(mean, m2, count);
    if (lane == 0) {
      mean_c[plane] = mean;
      rstd_c[plane] = m2;
      sum_mean += mean;
      sum_m2 += m2;
      reliable = reliable && moments_reliable(mean, m2, static_cast<acc_t>(M) - u, eps);
    }
  }
  block_allsum2(sum_mean, sum_m2, scratch);  // its __syncthreads also publish mean_c / M2_c

  // 2. Layer statistics, as sample_statistics: mean of the channel means, and
  //    M2_L = sum_c M2_c + M * sum_c (mean_c - mean_L)^2.
  const acc_t mu_l = sum_mean / static_cast<acc_t>(C);
  acc_t between = acc_t(0), unused = acc_t(0);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const acc_t d = mean_c[n * C + c] - mu_l;
    between += d * d;
  }
  block_allsum2(between, unused, scratch);
  const acc_t m2_layer = sum_m2 + static_cast<acc_t>(M) * between;
  const acc_t layer_count = static_cast<acc_t>(M) * static_cast<acc_t>(C) - u;
  reliable = reliable && moments_reliable(mu_l, m2_layer, layer_count, eps);
  acc_t layer_mean = mu_l;
  acc_t s_l = rstd_from_m2(m2_layer, layer_count, eps);

  // 2b. Unreliable float32 moments anywhere in the sample: all of them again, in double.
  bool wide = false;
  if constexpr (has_wider_type<acc_t>) {
    wide = __syncthreads_or(!reliable) != 0;
    if (wide) wide_sample_statistics(x, channels_last, n, C, M, unbiased, eps, mean_c, rstd_c, layer_mean, s_l);
  }
  if (threadIdx.x == 0) {
    mean_l[n] = layer_mean;
    rstd_l[n] = s_l;
  }

  // 3. Per channel: rstd_c (unless the recomputation wrote it) and the apply coefficients.
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const int64_t plane = n * C + c;
    const acc_t mu = mean_c[plane];
    const acc_t s_c = wide ? rstd_c[plane] : rstd_from_m2(rstd_c[plane], static_cast<acc_t>(M) - u, eps);
    rstd_c[plane] = s_c;
    acc_t a, b;
    channel_ab(params, n, c, mu, s_c, layer_mean, s_l, a, b);
    coef_a[plane] = a;
    coef_b[plane] = b;
  }
}

}  // namespace

template <typename scalar_t>
void launch_forward(const ForwardArgs<scalar_t>& args, const Plan& red, const Plan& app,
                    acc_type<scalar_t>* workspace, cudaStream_t stream) {
  using acc_t = acc_type<scalar_t>;
  constexpr int VW = vec_width<scalar_t>();
  const int64_t N = args.N, C = args.C, M = args.M, P = N * C;
  TORCH_CHECK(red.vec == app.vec && (red.vec == 1 || red.vec == VW), "fused_norm (CUDA): bad vector width ",
              red.vec);
  TORCH_CHECK(red.blocks() <= INT32_MAX && app.blocks() <= INT32_MAX && N <= INT32_MAX,
              "fused_norm (CUDA): tensor too large for the launch grid");
  acc_t* part_mean = workspace;
  acc_t* part_m2 = part_mean + P * red.splits;
  acc_t* coef_a = part_m2 + P * red.splits;
  acc_t* coef_b = coef_a + P;
  const bool vec = red.vec == VW && VW > 1;

  // 1. statistics
  if (!args.channels_last) {
    if (vec) {
      stats_nchw_kernel<scalar_t, VW><<<red.blocks(), red.threads, 0, stream>>>(args.x, part_mean, part_m2, M,
                                                                                   red.chunk, red.splits);
    } else {
      stats_nchw_kernel<scalar_t, 1><<<red.blocks(), red.threads, 0, stream>>>(args.x, part_mean, part_m2, M,
                                                                                  red.chunk, red.splits);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } else {
    const size_t smem = static_cast<size_t>(red.threads) * (2 * red.vec + 1) * sizeof(acc_t);
    if (vec) {
      stats_nhwc_kernel<scalar_t, VW><<<red.blocks(), red.threads, smem, stream>>>(
          args.x, part_mean, part_m2, C, M, red.chunk, red.splits, red.col_tiles, red.tx);
    } else {
      stats_nhwc_kernel<scalar_t, 1><<<red.blocks(), red.threads, smem, stream>>>(
          args.x, part_mean, part_m2, C, M, red.chunk, red.splits, red.col_tiles, red.tx);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  // 2. coefficients
  forward_coef_kernel<scalar_t><<<N, kCoefThreads, 0, stream>>>(
      args.x, args.channels_last, part_mean, part_m2, red.splits, red.chunk, C, M, args.params, args.unbiased,
      args.eps, args.mean_c, args.rstd_c, args.mean_l, args.rstd_l, coef_a, coef_b);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // 3. apply
  if (!args.channels_last) {
    if (vec) {
      apply_nchw_kernel<scalar_t, VW><<<app.blocks(), app.threads, 0, stream>>>(
          args.x, args.y, args.mean_c, coef_a, coef_b, M, app.chunk, app.splits, args.activation,
          args.negative_slope);
    } else {
      apply_nchw_kernel<scalar_t, 1><<<app.blocks(), app.threads, 0, stream>>>(
          args.x, args.y, args.mean_c, coef_a, coef_b, M, app.chunk, app.splits, args.activation,
          args.negative_slope);
    }
  } else {
    if (vec) {
      apply_nhwc_kernel<scalar_t, VW><<<app.blocks(), app.threads, 0, stream>>>(
          args.x, args.y, args.mean_c, coef_a, coef_b, C, M, app.chunk, app.splits, app.col_tiles, app.tx,
          args.activation, args.negative_slope);
    } else {
      apply_nhwc_kernel<scalar_t, 1><<<app.blocks(), app.threads, 0, stream>>>(
          args.x, args.y, args.mean_c, coef_a, coef_b, C, M, app.chunk, app.splits, app.col_tiles, app.tx,
          args.activation, args.negative_slope);
    }
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template void launch_forward<float>(const ForwardArgs<float>&, const Plan&, const Plan&, float*, cudaStream_t);
template void launch_forward<double>(const ForwardArgs<double>&, const Plan&, const Plan&, double*, cudaStream_t);
template void launch_forward<c10::Half>(const ForwardArgs<c10::Half>&, const Plan&, const Plan&, float*,
                                        cudaStream_t);
template void launch_forward<c10::BFloat16>(const ForwardArgs<c10::BFloat16>&, const Plan&, const Plan&, float*,
                                            cudaStream_t);

}  // namespace cuda
}  // namespace cyclegan_ext
