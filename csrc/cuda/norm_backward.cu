// Backward CUDA kernels of the fused AdaLIN / LIN / instance norm:
//   1. reduction pass: per (n, c) plane (or chunk of it) S1 = sum g and Ps = sum g xs, with
//      xs = x * scale - shift = (x - mean_c) * scale (norm_math.h centring_scale) and
//      g = grad_out * act'(a (x - mean_c) + b), the activation mask recomputed from the saved
//      statistics (y is not saved);
//   2. coefficient kernel, one block per sample: sums the partials, the per-sample totals and
//      per-channel dx coefficients and parameter gradients (norm_math.h backward_channel);
//   3. apply pass: dx = A g + B xs + C.
// Same geometry as the forward (norm_forward.cu): NCHW planes, or NHWC row-major samples.
#include "norm_kernels.cuh"

namespace cyclegan_ext {
namespace cuda {
namespace {

using namespace detail;

// Independent loads in flight per thread and stream (two streams: x and grad_out); fewer for
// 8-wide vectors to bound the registers.
template <int V>
constexpr int unroll_for() {
  return V >= 8 ? 2 : 4;
}

// How the passes see plane (n, c): xs = x * scale - shift, and the forward's a (in xs units,
// a / scale) and b for the activation mask (only computed with an activation), as the CPU
// kernels' `centring` (csrc/cpu/fused_norm_cpu.cpp).
template <typename acc_t>
struct Centring {
  acc_t scale, shift, a, b;
};

template <typename acc_t>
__device__ __forceinline__ Centring<acc_t> plane_centring(const ParamView<acc_t>& params, int64_t n, int64_t c,
                                                          acc_t mu, acc_t s_c, acc_t mu_l, acc_t s_l,
                                                          int64_t activation) {
  Centring<acc_t> k;
  k.scale = centring_scale(s_c, mu);
  k.shift = mu * k.scale;
  k.a = k.b = acc_t(0);
  if (activation != kActNone) {
    channel_ab(params, n, c, mu, s_c, mu_l, s_l, k.a, k.b);
    k.a /= k.scale;
  }
  return k;
}

// ---------------------------------------------------------------------------------------------
// NCHW

template <typename scalar_t, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    reduce_nchw_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ x,
                       ParamView<acc_type<scalar_t>> params, const acc_type<scalar_t>* __restrict__ mean_c,
                       const acc_type<scalar_t>* __restrict__ rstd_c, const acc_type<scalar_t>* __restrict__ mean_l,
                       const acc_type<scalar_t>* __restrict__ rstd_l, int64_t C, int64_t M, int64_t chunk,
                       int64_t splits, int64_t activation, acc_type<scalar_t> slope,
                       acc_type<scalar_t>* __restrict__ part_s1, acc_type<scalar_t>* __restrict__ part_p) {
  using acc_t = acc_type<scalar_t>;
  constexpr int kUnroll = unroll_for<V>();
  __shared__ acc_t scratch[64];
  const int64_t plane = blockIdx.x / splits;
  const int64_t split = blockIdx.x - plane * splits;
  const int64_t n = plane / C;
  const int64_t c = plane - n * C;
  const int64_t begin = split * chunk;
  const int64_t end = begin + chunk < M ? begin + chunk : M;
  const Centring<acc_t> k =
      plane_centring(params, n, c, mean_c[plane], rstd_c[plane], mean_l[n], rstd_l[n], activation);
  const scalar_t* xp = x + plane * M;
  const scalar_t* gp = grad_out + plane * M;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * V;

  acc_t s1 = acc_t(0), p = acc_t(0);
  for (int64_t i0 = begin + static_cast<int64_t>(threadIdx.x) * V; i0 < end; i0 += stride * kUnroll) {
    Vec<scalar_t, V> xb[kUnroll], gb[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      if (i < end) {
        xb[u] = load_vec<V>(xp + i);
        gb[u] = load_vec<V>(gp + i);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (i0 + u * stride < end) {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const acc_t d = static_cast<acc_t>(xb[u].v[j]) * k.scale - k.shift;
          acc_t g = static_cast<acc_t>(gb[u].v[j]);
          if (activation != kActNone) g *= activation_slope(k.a * d + k.b, activation, slope);
          s1 += g;
          p += g * d;
        }
      }
    }
  }
  block_sum2(s1, p, scratch);
  if (threadIdx.x == 0) {
    part_s1[blockIdx.x] = s1;  // blockIdx.x == plane * splits + split
    part_p[blockIdx.x] = p;
  }
}

template <typename scalar_t, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    apply_nchw_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ x,
                      scalar_t* __restrict__ grad_x, ParamView<acc_type<scalar_t>> params,
                      const acc_type<scalar_t>* __restrict__ mean_c, const acc_type<scalar_t>* __restrict__ rstd_c,
                      const acc_type<scalar_t>* __restrict__ mean_l, const acc_type<scalar_t>* __restrict__ rstd_l,
                      const acc_type<scalar_t>* __restrict__ coef_A, const acc_type<scalar_t>* __restrict__ coef_B,
                      const acc_type<scalar_t>* __restrict__ coef_C, int64_t C, int64_t M, int64_t chunk,
                      int64_t splits, int64_t activation, acc_type<scalar_t> slope) {
  using acc_t = acc_type<scalar_t>;
  constexpr int kUnroll = unroll_for<V>();
  const int64_t plane = blockIdx.x / splits;
  const int64_t split = blockIdx.x - plane * splits;
  const int64_t n = plane / C;
  const int64_t c = plane - n * C;
  const int64_t begin = split * chunk;
  const int64_t end = begin + chunk < M ? begin + chunk : M;
  const Centring<acc_t> k =
      plane_centring(params, n, c, mean_c[plane], rstd_c[plane], mean_l[n], rstd_l[n], activation);
  const acc_t A = coef_A[plane];
  const acc_t B = coef_B[plane];
  const acc_t Cc = coef_C[plane];
  const scalar_t* xp = x + plane * M;
  const scalar_t* gp = grad_out + plane * M;
  scalar_t* dxp = grad_x + plane * M;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * V;

  for (int64_t i0 = begin + static_cast<int64_t>(threadIdx.x) * V; i0 < end; i0 += stride * kUnroll) {
    Vec<scalar_t, V> xb[kUnroll], gb[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      if (i < end) {
        xb[u] = load_vec<V>(xp + i);
        gb[u] = load_vec<V>(gp + i);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      if (i < end) {
        Vec<scalar_t, V> out;
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const acc_t d = static_cast<acc_t>(xb[u].v[j]) * k.scale - k.shift;
          acc_t g = static_cast<acc_t>(gb[u].v[j]);
          if (activation != kActNone) g *= activation_slope(k.a * d + k.b, activation, slope);
          out.v[j] = static_cast<scalar_t>(A * g + B * d + Cc);
        }
        store_vec<V>(dxp + i, out);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// channels_last (NHWC)

template <typename scalar_t, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    reduce_nhwc_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ x,
                       ParamView<acc_type<scalar_t>> params, const acc_type<scalar_t>* __restrict__ mean_c,
                       const acc_type<scalar_t>* __restrict__ rstd_c, const acc_type<scalar_t>* __restrict__ mean_l,
                       const acc_type<scalar_t>* __restrict__ rstd_l, int64_t C, int64_t M, int64_t chunk,
                       int64_t splits, int64_t col_tiles, int tx_count, int64_t activation,
                       acc_type<scalar_t> slope, acc_type<scalar_t>* __restrict__ part_s1,
                       acc_type<scalar_t>* __restrict__ part_p) {
  using acc_t = acc_type<scalar_t>;
  constexpr int kUnroll = unroll_for<V>();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* sh_s1 = reinterpret_cast<acc_t*>(smem_raw);  // [blockDim.x][V]
  acc_t* sh_p = sh_s1 + blockDim.x * V;                // [blockDim.x][V]

  const NhwcPosition pos = nhwc_position<V>(M, chunk, splits, col_tiles, tx_count);
  const int64_t n = pos.n, split = pos.split, c0 = pos.c0, row_begin = pos.row_begin, row_end = pos.row_end;
  const int tx = pos.tx, ty = pos.ty, ty_count = pos.ty_count;
  const bool active = c0 < C;  // V divides C when V > 1

  acc_t s1[V], p[V];
#pragma unroll
  for (int k = 0; k < V; ++k) s1[k] = p[k] = acc_t(0);
  if (active) {
    acc_t scale[V], shift[V], a[V], b[V];
    const acc_t mu_l = mean_l[n], s_l = rstd_l[n];
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int64_t plane = n * C + c0 + k;
      const Centring<acc_t> ck =
          plane_centring(params, n, c0 + k, mean_c[plane], rstd_c[plane], mu_l, s_l, activation);
      scale[k] = ck.scale;
      shift[k] = ck.shift;
      a[k] = ck.a;
      b[k] = ck.b;
    }
    const scalar_t* xbase = x + n * M * C + c0;
    const scalar_t* gbase = grad_out + n * M * C + c0;
    const int64_t row_stride = ty_count;
    for (int64_t r0 = row_begin + ty; r0 < row_end; r0 += row_stride * kUnroll) {
      Vec<scalar_t, V> xb[kUnroll], gb[kUnroll];
      load_rows(xbase, C, r0, row_stride, row_end, xb);
      load_rows(gbase, C, r0, row_stride, row_end, gb);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (r0 + u * row_stride < row_end) {
#pragma unroll
          for (int k = 0; k < V; ++k) {
            const acc_t d = static_cast<acc_t>(xb[u].v[k]) * scale[k] - shift[k];
            acc_t g = static_cast<acc_t>(gb[u].v[k]);
            if (activation != kActNone) g *= activation_slope(a[k] * d + b[k], activation, slope);
            s1[k] += g;
            p[k] += g * d;
          }
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) {
    sh_s1[threadIdx.x * V + k] = s1[k];
    sh_p[threadIdx.x * V + k] = p[k];
  }
  __syncthreads();
  if (ty == 0 && active) {
    for (int j = 1; j < ty_count; ++j) {
      const int idx = j * tx_count + tx;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        s1[k] += sh_s1[idx * V + k];
        p[k] += sh_p[idx * V + k];
      }
    }
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int64_t plane = n * C + c0 + k;
      part_s1[plane * splits + split] = s1[k];
      part_p[plane * splits + split] = p[k];
    }
  }
}

template <typename scalar_t, int V>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocks)
    apply_nhwc_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ x,
                      scalar_t* __restrict__ grad_x, ParamView<acc_type<scalar_t>> params,
                      const acc_type<scalar_t>* __restrict__ mean_c, const acc_type<scalar_t>* __restrict__ rstd_c,
                      const acc_type<scalar_t>* __restrict__ mean_l, const acc_type<scalar_t>* __restrict__ rstd_l,
                      const acc_type<scalar_t>* __restrict__ coef_A, const acc_type<scalar_t>* __restrict__ coef_B,
                      const acc_type<scalar_t>* __restrict__ coef_C, int64_t C, int64_t M, int64_t chunk,
                      int64_t splits, int64_t col_tiles, int tx_count, int64_t activation,
                      acc_type<scalar_t> slope) {
  using acc_t = acc_type<scalar_t>;
  constexpr int kUnroll = unroll_for<V>();
  const NhwcPosition pos = nhwc_position<V>(M, chunk, splits, col_tiles, tx_count);
  const int64_t n = pos.n, c0 = pos.c0, row_begin = pos.row_begin, row_end = pos.row_end;
  const int ty = pos.ty, ty_count = pos.ty_count;
  if (c0 >= C) return;  // no block-wide synchronisation below

  acc_t scale[V], shift[V], a[V], b[V], A[V], B[V], Cc[V];
  const acc_t mu_l = mean_l[n], s_l = rstd_l[n];
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int64_t plane = n * C + c0 + k;
    const Centring<acc_t> ck =
        plane_centring(params, n, c0 + k, mean_c[plane], rstd_c[plane], mu_l, s_l, activation);
    scale[k] = ck.scale;
    shift[k] = ck.shift;
    a[k] = ck.a;
    b[k] = ck.b;
    A[k] = coef_A[plane];
    B[k] = coef_B[plane];
    Cc[k] = coef_C[plane];
  }
  const scalar_t* xbase = x + n * M * C + c0;
  const scalar_t* gbase = grad_out + n * M * C + c0;
  scalar_t* dxbase = grad_x + n * M * C + c0;
  const int64_t row_stride = ty_count;
  for (int64_t r0 = row_begin + ty; r0 < row_end; r0 += row_stride * kUnroll) {
    Vec<scalar_t, V> xb[kUnroll], gb[kUnroll];
    load_rows(xbase, C, r0, row_stride, row_end, xb);
    load_rows(gbase, C, r0, row_stride, row_end, gb);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t r = r0 + u * row_stride;
      if (r < row_end) {
        Vec<scalar_t, V> out;
#pragma unroll
        for (int k = 0; k < V; ++k) {
          const acc_t d = static_cast<acc_t>(xb[u].v[k]) * scale[k] - shift[k];
          acc_t g = static_cast<acc_t>(gb[u].v[k]);
          if (activation != kActNone) g *= activation_slope(a[k] * d + b[k], activation, slope);
          out.v[k] = static_cast<scalar_t>(A[k] * g + B[k] * d + Cc[k]);
        }
        store_vec<V>(dxbase + r * C, out);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Per-sample coefficients: one block per sample.

template <typename acc_t>
__global__ void __launch_bounds__(kCoefThreads)
    backward_coef_kernel(const acc_t* __restrict__ part_s1, const acc_t* __restrict__ part_p, int64_t splits,
                         int64_t C, int64_t M, bool unbiased, ParamView<acc_t> params,
                         const acc_t* __restrict__ mean_c, const acc_t* __restrict__ rstd_c,
                         const acc_t* __restrict__ mean_l, const acc_t* __restrict__ rstd_l,
                         acc_t* __restrict__ grad_weight, acc_t* __restrict__ grad_bias,
                         acc_t* __restrict__ grad_rho, acc_t* __restrict__ coef_A, acc_t* __restrict__ coef_B,
                         acc_t* __restrict__ coef_C) {
  __shared__ acc_t scratch[64];
  const int64_t n = blockIdx.x;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  const acc_t mu_l = mean_l[n];
  const acc_t s_l = rstd_l[n];

  // 1. Per channel (one warp each): S1_c and Ps_c (parked in grad_bias / grad_weight until
  //    step 2), and the terms of sample_backward_totals.
  acc_t t1 = acc_t(0), t2 = acc_t(0);
  for (int64_t c = warp; c < C; c += warps) {
    const int64_t plane = n * C + c;
    acc_t s1 = acc_t(0), p = acc_t(0);
    for (int64_t s = lane; s < splits; s += 32) {
      s1 += part_s1[plane * splits + s];
      p += part_p[plane * splits + s];
    }
    s1 = warp_sum(s1);
    p = warp_sum(p);
    if (lane == 0) {
      grad_bias[plane] = s1;
      grad_weight[plane] = p;
      // As sample_backward_totals (norm_math.h), summed in parallel.
      add_layer_totals(param_gamma(params, n, c), param_rho(params, c), mean_c[plane],
                       centring_scale(rstd_c[plane], mean_c[plane]), s1, p, mu_l, s_l, &t1, &t2);
    }
  }
  block_allsum2(t1, t2, scratch);  // its __syncthreads also publish S1_c / Ps_c
  const acc_t T1 = t1;
  const acc_t T2 = t2;

  // 2. Per channel: dx coefficients and parameter gradients.
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const int64_t plane = n * C + c;
    const acc_t s1 = grad_bias[plane];
    const acc_t p = grad_weight[plane];
    const acc_t mu = mean_c[plane], s_c = rstd_c[plane];
    const BackwardChannel<acc_t> r = backward_channel(param_gamma(params, n, c), param_rho(params, c), mu, s_c,
                                                      centring_scale(s_c, mu), s1, p, mu_l, s_l, T1, T2, C, M,
                                                      unbiased);
    coef_A[plane] = r.A;
    coef_B[plane] = r.B;
    coef_C[plane] = r.C;
    grad_weight[plane] = r.dgamma;
    grad_bias[plane] = r.dbeta;
    grad_rho[plane] = params.rho == nullptr ? acc_t(0) : r.drho;
  }
}

}  // namespace

template <typename scalar_t>
void launch_backward(const BackwardArgs<scalar_t>& args, const Plan& red, const Plan& app,
                     acc_type<scalar_t>* workspace, cudaStream_t stream) {
  using acc_t = acc_type<scalar_t>;
  constexpr int VW = vec_width<scalar_t>();
  const int64_t N = args.N, C = args.C, M = args.M, P = N * C;
  TORCH_CHECK(red.vec == app.vec && (red.vec == 1 || red.vec == VW),
              "fused_norm_backward (CUDA): bad vector width ", red.vec);
  TORCH_CHECK(red.blocks() <= INT32_MAX && app.blocks() <= INT32_MAX && N <= INT32_MAX,
              "fused_norm_backward (CUDA): tensor too large for the launch grid");
  acc_t* part_s1 = workspace;
  acc_t* part_p = part_s1 + P * red.splits;
  acc_t* coef_A = part_p + P * red.splits;
  acc_t* coef_B = coef_A + P;
  acc_t* coef_C = coef_B + P;
  const bool vec = red.vec == VW && VW > 1;

  // 1. gradient sums
  if (!args.channels_last) {
    if (vec) {
      reduce_nchw_kernel<scalar_t, VW><<<red.blocks(), red.threads, 0, stream>>>(
          args.grad_out, args.x, args.params, args.mean_c, args.rstd_c, args.mean_l, args.rstd_l, C, M, red.chunk,
          red.splits, args.activation, args.negative_slope, part_s1, part_p);
    } else {
      reduce_nchw_kernel<scalar_t, 1><<<red.blocks(), red.threads, 0, stream>>>(
          args.grad_out, args.x, args.params, args.mean_c, args.rstd_c, args.mean_l, args.rstd_l, C, M, red.chunk,
          red.splits, args.activation, args.negative_slope, part_s1, part_p);
    }
  } else {
    const size_t smem = static_cast<size_t>(red.threads) * 2 * red.vec * sizeof(acc_t);
    if (vec) {
      reduce_nhwc_kernel<scalar_t, VW><<<red.blocks(), red.threads, smem, stream>>>(
          args.grad_out, args.x, args.params, args.mean_c, args.rstd_c, args.mean_l, args.rstd_l, C, M, red.chunk,
          red.splits, red.col_tiles, red.tx, args.activation, args.negative_slope, part_s1, part_p);
    } else {
      reduce_nhwc_kernel<scalar_t, 1><<<red.blocks(), red.threads, smem, stream>>>(
          args.grad_out, args.x, args.params, args.mean_c, args.rstd_c, args.mean_l, args.rstd_l, C, M, red.chunk,
          red.splits, red.col_tiles, red.tx, args.activation, args.negative_slope, part_s1, part_p);
    }
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // 2. coefficients and parameter gradients
  backward_coef_kernel<acc_t><<<N, kCoefThreads, 0, stream>>>(
      part_s1, part_p, red.splits, C, M, args.unbiased, args.params, args.mean_c, args.rstd_c, args.mean_l,
      args.rstd_l, args.grad_weight, args.grad_bias, args.grad_rho, coef_A, coef_B, coef_C);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // 3. apply
  if (!args.channels_last) {
    if (vec) {
      apply_nchw_kernel<scalar_t, VW><<<app.blocks(), app.threads, 0, stream>>>(
          args.grad_out, args.x, args.grad_x, args.params, args.mean_c, args.rstd_c, args.mean_l, args.rstd_l,
          coef_A, coef_B, coef_C, C, M, app.chunk, app.splits, args.activation, args.negative_slope);
    } else {
      apply_nchw_kernel<scalar_t, 1><<<app.blocks(), app.threads, 0, stream>>>(
          args.grad_out, args.x, args.grad_x, args.params, args.mean_c, args.rstd_c, args.mean_l, args.rstd_l,
          coef_A, coef_B, coef_C, C, M, app.chunk, app.splits, args.activation, args.negative_slope);
    }
  } else {
    if (vec) {
      apply_nhwc_kernel<scalar_t, VW><<<app.blocks(), app.threads, 0, stream>>>(
          args.grad_out, args.x, args.grad_x, args.params, args.mean_c, args.rstd_c, args.mean_l, args.rstd_l,
          coef_A, coef_B, coef_C, C, M, app.chunk, app.splits, app.col_tiles, app.tx, args.activation,
          args.negative_slope);
    } else {
      apply_nhwc_kernel<scalar_t, 1><<<app.blocks(), app.threads, 0, stream>>>(
          args.grad_out, args.x, args.grad_x, args.params, args.mean_c, args.rstd_c, args.mean_l, args.rstd_l,
          coef_A, coef_B, coef_C, C, M, app.chunk, app.splits, app.col_tiles, app.tx, args.activation,
          args.negative_slope);
    }
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template void launch_backward<float>(const BackwardArgs<float>&, const Plan&, const Plan&, float*, cudaStream_t);
template void launch_backward<double>(const BackwardArgs<double>&, const Plan&, const Plan&, double*,
                                      cudaStream_t);
template void launch_backward<c10::Half>(const BackwardArgs<c10::Half>&, const Plan&, const Plan&, float*,
                                         cudaStream_t);
template void launch_backward<c10::BFloat16>(const BackwardArgs<c10::BFloat16>&, const Plan&, const Plan&,
                                             float*, cudaStream_t);

}  // namespace cuda
}  // namespace cyclegan_ext
