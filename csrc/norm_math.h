// Per-(n, c) coefficient math shared by the CPU and CUDA kernels.
//
// The fused op normalizes x (N, C, H, W) with a mix of instance statistics (per n, c)
// and layer statistics (per n), see docs/ops.md. Everything here works on the small
// per-(n, c) and per-n statistics; the big passes over x live in the device kernels.
//
// Numerics: the apply passes are written around the channel mean,
//     y  = a * (x - mu_c) + b
//     dx = A * g + B * (x - mu_c) + C
// rather than a * x + b, because with |mu| >> std the products a * x and b are huge and
// nearly cancel in float32; x - mu_c is computed almost exactly instead.
#pragma once

#include <c10/macros/Macros.h>
#include <cmath>
#include <cstdint>

namespace cyclegan_ext {

// Keep in sync with cyclegan_ext/activations.py.
enum ActivationCode : int64_t { kActNone = 0, kActRelu = 1, kActLeakyRelu = 2 };

// NaN stays NaN through the activations, as in torch.relu / leaky_relu.
template <typename T>
C10_HOST_DEVICE inline T activate(T y, int64_t act, T slope) {
  if (act == kActRelu) return y < T(0) ? T(0) : y;
  if (act == kActLeakyRelu) return y < T(0) ? y * slope : y;
  return y;
}

// d activation / d y, evaluated from the pre-activation value y (y need not be saved);
// the same choice at y == 0 as PyTorch's relu / leaky_relu backward.
template <typename T>
C10_HOST_DEVICE inline T activation_slope(T y, int64_t act, T slope) {
  if (act == kActRelu) return y <= T(0) ? T(0) : T(1);
  if (act == kActLeakyRelu) return y > T(0) ? T(1) : slope;
  return T(1);
}

// Chan et al. combination of two partial moment sets (mean, sum of squared deviations, count).
template <typename T>
C10_HOST_DEVICE inline void chan_combine(T& mean, T& m2, T& count, T mean_b, T m2_b, T count_b) {
  if (count_b == T(0)) return;
  const T total = count + count_b;
  const T delta = mean_b - mean;
  const T w = count_b / total;
  mean += delta * w;
  m2 += m2_b + delta * delta * count * w;
  count = total;
}

template <typename T>
C10_HOST_DEVICE inline T rstd_from_m2(T m2, T denominator, T eps) {
  T var = m2 / denominator;
  var = var > T(0) ? var : T(0);
  return T(1) / ::sqrt(var + eps);
}

// Forward statistics of one sample: from per-channel (mean_c, m2_c) over M = H*W pixels,
// writes rstd_c in place of m2_c and returns the layer mean / rstd.
template <typename T>
C10_HOST_DEVICE inline void sample_statistics(const T* mean_c, T* m2_to_rstd_c, int64_t C, int64_t M,
                                              bool unbiased, T eps, T* mean_l, T* rstd_l) {
  T mu = T(0);
  for (int64_t c = 0; c < C; ++c) mu += mean_c[c];
  mu /= T(C);
  T m2_within = T(0), m2_between = T(0);
  for (int64_t c = 0; c < C; ++c) {
    const T d = mean_c[c] - mu;
    m2_within += m2_to_rstd_c[c];
    m2_between += d * d;
  }
  const T u = unbiased ? T(1) : T(0);
  const T m2_layer = m2_within + T(M) * m2_between;
  *mean_l = mu;
  *rstd_l = rstd_from_m2(m2_layer, T(M) * T(C) - u, eps);
  for (int64_t c = 0; c < C; ++c) m2_to_rstd_c[c] = rstd_from_m2(m2_to_rstd_c[c], T(M) - u, eps);
}

// Forward apply coefficients of one (n, c): y = a * (x - mu_c) + b (before the activation).
// rho == 1 is instance norm.
template <typename T>
C10_HOST_DEVICE inline void forward_coefficients(T gamma, T beta, T rho, T mu_c, T s_c, T mu_l, T s_l,
                                                 T* a, T* b) {
  const T g_layer = gamma * (T(1) - rho) * s_l;
  *a = gamma * rho * s_c + g_layer;
  *b = beta + g_layer * (mu_c - mu_l);
}

// Backward of one sample. Inputs per channel: S1_c = sum_i g_ci and P_c = sum_i g_ci (x_ci - mu_c),
// g being the output gradient already multiplied by the activation's derivative.
// Outputs per channel: the apply coefficients dx = A g + B (x - mu_c) + C and the parameter
// gradients (per sample; the caller sums over n where a parameter is shared).
template <typename T>
struct BackwardChannel {
  T A, B, C, dgamma, dbeta, drho;
};

template <typename T>
C10_HOST_DEVICE inline void sample_backward_totals(const T* gamma, const T* rho, const T* mean_c,
                                                   const T* s1, const T* p, int64_t C, T mu_l, T s_l,
                                                   T* T1, T* T2) {
  T t1 = T(0), t2 = T(0);
  for (int64_t c = 0; c < C; ++c) {
    const T g_layer = gamma[c] * (T(1) - rho[c]);
    const T q = p[c] + (mean_c[c] - mu_l) * s1[c];  // sum_i g (x - mu_l)
    t1 += g_layer * s1[c];
    t2 += g_layer * q;
  }
  *T1 = t1;
  *T2 = s_l * t2;
}

template <typename T>
C10_HOST_DEVICE inline BackwardChannel<T> backward_channel(T gamma, T rho, T mu_c, T s_c, T s1, T p,
                                                           T mu_l, T s_l, T T1, T T2, int64_t C,
                                                           int64_t M, bool unbiased) {
  const T u = unbiased ? T(1) : T(0);
  const T D = T(M) - u;
  const T K = T(M) * T(C);
  const T E = K - u;
  const T g_inst = gamma * rho;
  const T g_layer = gamma * (T(1) - rho);
  const T q = p + (mu_c - mu_l) * s1;
  const T s_c3 = s_c * s_c * s_c;
  const T s_l2 = s_l * s_l;
  BackwardChannel<T> r;
  r.A = s_c * g_inst + s_l * g_layer;
  r.B = -s_c3 * g_inst * p / D - s_l2 * T2 / E;
  r.C = -s_c * g_inst * s1 / T(M) - s_l * T1 / K - s_l2 * T2 * (mu_c - mu_l) / E;
  r.dgamma = rho * s_c * p + (T(1) - rho) * s_l * q;
  r.dbeta = s1;
  r.drho = gamma * (s_c * p - s_l * q);
  return r;
}

}  // namespace cyclegan_ext
