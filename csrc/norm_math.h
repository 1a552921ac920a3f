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
//
// Containment: a term whose weight is exactly zero contributes exactly zero (`weighted`), so
// the unused layer statistics of instance norm (weight gamma (1 - rho) = 0) cannot carry a
// NaN / inf of one plane into the other planes of its sample.
//
// Range: fast statistics that overflowed or underflowed are detected (`moments_reliable`) and
// recomputed by the kernels in a wider type; the backward works on x centred and scaled by a
// power of two near s_c (`centring_scale`), so that its sums and coefficients stay in range
// for any |x| whose float32 statistics are representable.
#pragma once

#include <c10/macros/Macros.h>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace cyclegan_ext {

// v is neither inf nor NaN (v - v is exactly 0 for every finite v, NaN otherwise).
template <typename T>
C10_HOST_DEVICE inline bool is_finite(T v) {
  return v - v == T(0);
}

// w * v, but exactly 0 when the weight w is exactly 0, whatever v is (0 * NaN would be NaN).
template <typename T>
C10_HOST_DEVICE inline T weighted(T w, T v) {
  return w == T(0) ? T(0) : w * v;
}

// The statistics of float32 data are recomputed in double where float32 cannot hold them:
// every finite float32 value squared, times any element count, is finite in double, and the
// squares of float32 denormals are normal doubles. float64 data has no wider type; there an
// overflow ends as NaN (rstd_from_m2), never as a finite statistic.
template <typename T>
constexpr bool has_wider_type = std::is_same<T, float>::value;

// double -> T, overflowing to +-inf as IEEE arithmetic does (a plain cast of an out-of-range
// value is undefined behaviour in C++).
template <typename T>
C10_HOST_DEVICE inline T narrow(double v) {
  const double top = static_cast<double>(std::numeric_limits<T>::max());
  if (v > top) return std::numeric_limits<T>::infinity();
  if (v < -top) return -std::numeric_limits<T>::infinity();
  return static_cast<T>(v);
}

// Below this var + eps the squares summed into M2 may have underflowed by more than the
// type's precision: each square below the smallest normal number is off by at most
// 2^-150 (float; 2^-1075 double) absolutely, or by the smallest normal (2^-126, 2^-1022)
// where denormals are flushed, so var + eps >= 2^-100 (2^-996) keeps that below 2^-26
// relative.
template <typename T>
C10_HOST_DEVICE inline T tiny_variance() {
  if constexpr (std::is_same<T, float>::value) {
    return 0x1p-100f;
  } else {
    return 0x1p-996;
  }
}

// Whether moments (mean, M2 over `denominator` = count - u) computed in T can be trusted.
// Overflow anywhere in the moment passes leaves inf or NaN in the mean or M2 (IEEE overflow
// is sticky, and the passes never divide by or clamp an overflowed value); a variance below
// tiny_variance may have lost its digits to underflow. NaN in x also reads as unreliable: the
// recomputation then gives NaN again.
template <typename T>
C10_HOST_DEVICE inline bool moments_reliable(T mean, T m2, T denominator, T eps) {
  const T var = m2 / denominator;
  return is_finite(mean) && is_finite(var) && var + eps >= tiny_variance<T>();
}

// The corrected two-pass moments (Chan, Golub & LeVeque) of `count` values from the first
// pass's mean mu and the second pass's sums d = sum (x - mu), q = sum (x - mu)^2. The
// correction is d * (d / count): d^2 / count <= q, so it is finite whenever q is, where d * d
// alone can overflow and turn an overflowed q - d * d / count into a finite 0.
template <typename T>
C10_HOST_DEVICE inline void corrected_two_pass(T mu, T d, T q, T count, T* mean, T* m2) {
  *mean = mu + d / count;
  const T m = q - d * (d / count);
  *m2 = m < T(0) ? T(0) : m;  // rounding can leave it a hair below 0; NaN stays NaN
}

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
  var = var < T(0) ? T(0) : var;  // NaN stays NaN
  // An infinite variance of finite data is an overflowed statistic: NaN, not the finite
  // 1 / sqrt(inf) = 0 (which would make every output of the plane its bias).
  return is_finite(var) ? T(1) / ::sqrt(var + eps) : std::numeric_limits<T>::quiet_NaN();
}

// Forward statistics of one sample: from per-channel (mean_c, m2_c) over M = H*W pixels,
// writes rstd_c in place of m2_c and the layer mean / rstd. Returns whether all of the
// sample's moments were reliable (moments_reliable); if not, the caller recomputes them in the
// wider type where there is one.
template <typename T>
C10_HOST_DEVICE inline bool sample_statistics(const T* mean_c, T* m2_to_rstd_c, int64_t C, int64_t M,
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
  bool reliable = moments_reliable(mu, m2_layer, T(M) * T(C) - u, eps);
  *mean_l = mu;
  *rstd_l = rstd_from_m2(m2_layer, T(M) * T(C) - u, eps);
  for (int64_t c = 0; c < C; ++c) {
    reliable = reliable && moments_reliable(mean_c[c], m2_to_rstd_c[c], T(M) - u, eps);
    m2_to_rstd_c[c] = rstd_from_m2(m2_to_rstd_c[c], T(M) - u, eps);
  }
  return reliable;
}

// Forward apply coefficients of one (n, c): y = a * (x - mu_c) + b (before the activation).
// rho == 1 is instance norm: the layer statistics then have weight 0 and do not enter.
template <typename T>
C10_HOST_DEVICE inline void forward_coefficients(T gamma, T beta, T rho, T mu_c, T s_c, T mu_l, T s_l,
                                                 T* a, T* b) {
  const T g_layer = gamma * (T(1) - rho);
  *a = weighted(gamma * rho, s_c) + weighted(g_layer, s_l);
  *b = beta + weighted(g_layer, s_l * (mu_c - mu_l));
}

// The power of two sigma_c the backward scales the centred x with: xs = (x - mu_c) sigma_c,
// the largest power of two <= s_c. With sigma_c ~ s_c, xs is of the size of the normalized
// value, and so are the sums over it, whatever the scale of x: unscaled, B = s_c^3 ...
// underflows to 0 in float32 from |x| ~ 1e13 on (and overflows for a tiny variance with
// eps = 0). x sigma_c must not overflow: |x sigma_c| <= |mu_c| sigma_c + |x - mu_c| s_c, the
// second term is a normalized value, and sigma_c > 1 is capped so that |mu_c| sigma_c <= 2^64
// (a plane that is constant to within float precision has x - mu_c = 0). A power of two, so
// x sigma_c - mu_c sigma_c rounds exactly as x - mu_c does (barring underflow far below the
// precision of xs). NaN / inf statistics give 1.
template <typename T>
C10_HOST_DEVICE inline T centring_scale(T s_c, T mu_c) {
  T target = s_c;
  if (target > T(1)) {
    const T cap = T(0x1p64) / (mu_c < T(0) ? -mu_c : mu_c);  // inf for mu_c == 0
    if (cap < target) target = cap > T(1) ? cap : T(1);
  }
  if (!(target > T(0) && is_finite(target))) return T(1);
  int e;
  ::frexp(target, &e);  // target = f 2^e, f in [1/2, 1)
  return static_cast<T>(::ldexp(T(1), e - 1));
}

// s_L Q_c = s_L sum_i g (x - mu_L) of one channel, from S1 = sum_i g and Ps = sum_i g xs:
// Q_c = Ps / sigma_c + (mu_c - mu_L) S1, evaluated as normalized terms that stay in range.
template <typename T>
C10_HOST_DEVICE inline T layer_moment(T ps, T scale, T s1, T mu_c, T mu_l, T s_l) {
  return (s_l / scale) * ps + (s_l * (mu_c - mu_l)) * s1;
}

// Backward of one sample. Inputs per channel: S1_c = sum_i g_ci and Ps_c = sum_i g_ci xs_ci,
// xs = (x - mu_c) sigma_c (centring_scale), g being the output gradient already multiplied by
// the activation's derivative. Outputs per channel: the apply coefficients
// dx = A g + B xs + C and the parameter gradients (per sample; the caller sums over n where
// a parameter is shared).
template <typename T>
struct BackwardChannel {
  T A, B, C, dgamma, dbeta, drho;
};

// Channel c's terms of the per-sample totals T1 = sum_c gL_c S1_c and T2 = sum_c gL_c s_L Q_c,
// gL = gamma (1 - rho): zero for instance norm, whatever the layer statistics are.
template <typename T>
C10_HOST_DEVICE inline void add_layer_totals(T gamma, T rho, T mu_c, T scale, T s1, T ps, T mu_l, T s_l, T* t1,
                                             T* t2) {
  const T g_layer = gamma * (T(1) - rho);
  *t1 += weighted(g_layer, s1);
  *t2 += weighted(g_layer, layer_moment(ps, scale, s1, mu_c, mu_l, s_l));
}

template <typename T>
C10_HOST_DEVICE inline void sample_backward_totals(const T* gamma, const T* rho, const T* mean_c, const T* scale,
                                                   const T* s1, const T* ps, int64_t C, T mu_l, T s_l, T* T1,
                                                   T* T2) {
  T t1 = T(0), t2 = T(0);
  for (int64_t c = 0; c < C; ++c) {
    add_layer_totals(gamma[c], rho[c], mean_c[c], scale[c], s1[c], ps[c], mu_l, s_l, &t1, &t2);
  }
  *T1 = t1;
  *T2 = t2;
}

// The formulas of docs/ops.md with P = Ps / sigma, grouped so that every factor is a
// normalized quantity: r = s_c / sigma in [1, 2) (s_c where sigma = 1), s_c P = r Ps,
// s_L (mu_c - mu_L) and s_L Q. Terms of weight exactly 0 (gamma rho, gamma (1 - rho), T1, T2)
// contribute exactly 0.
template <typename T>
C10_HOST_DEVICE inline BackwardChannel<T> backward_channel(T gamma, T rho, T mu_c, T s_c, T scale, T s1, T ps,
                                                           T mu_l, T s_l, T T1, T T2, int64_t C, int64_t M,
                                                           bool unbiased) {
  const T u = unbiased ? T(1) : T(0);
  const T D = T(M) - u;
  const T K = T(M) * T(C);
  const T E = K - u;
  const T g_inst = gamma * rho;
  const T g_layer = gamma * (T(1) - rho);
  const T r = s_c / scale;
  const T inst_moment = r * ps;  // s_c P
  const T lq = layer_moment(ps, scale, s1, mu_c, mu_l, s_l);
  const T a_inst = weighted(g_inst, s_c);
  BackwardChannel<T> out;
  // a_inst g of A g and the a_inst S1 / M of C are rounded alike, so that they cancel exactly
  // where they should (M = 1).
  out.A = a_inst + weighted(g_layer, s_l);
  out.B = -weighted(a_inst, (r * r) * ps) / D - weighted(T2, (s_l / scale) * s_l) / E;
  out.C = -weighted(a_inst, s1) / T(M) - weighted(T1, s_l) / K - weighted(T2, s_l * (s_l * (mu_c - mu_l))) / E;
  out.dgamma = weighted(rho, inst_moment) + weighted(T(1) - rho, lq);
  out.dbeta = s1;
  out.drho = gamma * (inst_moment - lq);
  return out;
}

}  // namespace cyclegan_ext
