// Vectorised inner loops of the CPU kernels: one contiguous run of elements with a
// per-run (or per-element-column) set of coefficients. Everything is templated on the
// scalar type T (float or double), which is also the accumulation type.
#pragma once

#include "../norm_math.h"

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstdint>

namespace cyclegan_ext {
namespace cpu {

using at::vec::Vectorized;

template <typename T>
inline T horizontal_sum(const Vectorized<T>& v) {
  alignas(64) T lanes[Vectorized<T>::size()];
  v.store(lanes);
  T s = T(0);
  for (int64_t i = 0; i < Vectorized<T>::size(); ++i) s += lanes[i];
  return s;
}

template <typename T>
inline Vectorized<T> activate_vec(const Vectorized<T>& y, int64_t act, const Vectorized<T>& slope) {
  using Vec = Vectorized<T>;
  if (act == kActRelu) return Vec::blendv(y, Vec(T(0)), y < Vec(T(0)));
  if (act == kActLeakyRelu) return Vec::blendv(y, y * slope, y < Vec(T(0)));
  return y;
}

// g * activation'(y), vectorised twin of activation_slope().
template <typename T>
inline Vectorized<T> mask_grad_vec(const Vectorized<T>& g, const Vectorized<T>& y, int64_t act,
                                   const Vectorized<T>& slope) {
  using Vec = Vectorized<T>;
  if (act == kActRelu) return Vec::blendv(g, Vec(T(0)), y <= Vec(T(0)));
  if (act == kActLeakyRelu) return Vec::blendv(g * slope, g, y > Vec(T(0)));
  return g;
}

// Mean and sum of squared deviations of x[0..M): exact two-pass with the rounding
// correction of the first pass (Chan, Golub & LeVeque's corrected two-pass algorithm).
// Meant for a run that stays in cache between the two passes.
template <typename T>
inline void run_moments(const T* x, int64_t M, T* mean_out, T* m2_out) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  Vec s0(T(0)), s1(T(0));
  int64_t i = 0;
  for (; i + 2 * W <= M; i += 2 * W) {
    s0 += Vec::loadu(x + i);
    s1 += Vec::loadu(x + i + W);
  }
  T sum = horizontal_sum(s0 + s1);
  for (; i < M; ++i) sum += x[i];
  const T mean = sum / T(M);
  const Vec vmean(mean);
  Vec d0(T(0)), d1(T(0)), q0(T(0)), q1(T(0));
  i = 0;
  for (; i + 2 * W <= M; i += 2 * W) {
    const Vec a = Vec::loadu(x + i) - vmean;
    const Vec b = Vec::loadu(x + i + W) - vmean;
    d0 += a;
    d1 += b;
    q0 = at::vec::fmadd(a, a, q0);
    q1 = at::vec::fmadd(b, b, q1);
  }
  T d = horizontal_sum(d0 + d1), q = horizontal_sum(q0 + q1);
  for (; i < M; ++i) {
    const T a = x[i] - mean;
    d += a;
    q += a * a;
  }
  *mean_out = mean + d / T(M);
  *m2_out = std::max(q - d * d / T(M), T(0));
}

// y = act(a * (x - mu) + b) over a contiguous run.
template <typename T>
inline void run_apply(const T* x, T* y, int64_t M, T mu, T a, T b, int64_t act, T slope) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec va(a), vb(b), vmu(mu), vslope(slope);
  int64_t i = 0;
  for (; i + W <= M; i += W) {
    const Vec v = at::vec::fmadd(Vec::loadu(x + i) - vmu, va, vb);
    activate_vec(v, act, vslope).store(y + i);
  }
  for (; i < M; ++i) y[i] = activate(a * (x[i] - mu) + b, act, slope);
}

// S1 = sum g', P = sum g' (x - mu) over a run, g' = g * act'(a (x - mu) + b).
template <typename T>
inline void run_grad_sums(const T* g, const T* x, int64_t M, T mu, T a, T b, int64_t act, T slope,
                          T* s1_out, T* p_out) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec va(a), vb(b), vmu(mu), vslope(slope);
  Vec s1(T(0)), p(T(0));
  int64_t i = 0;
  for (; i + W <= M; i += W) {
    const Vec xc = Vec::loadu(x + i) - vmu;
    Vec gv = Vec::loadu(g + i);
    if (act != kActNone) gv = mask_grad_vec(gv, at::vec::fmadd(xc, va, vb), act, vslope);
    s1 += gv;
    p = at::vec::fmadd(gv, xc, p);
  }
  T s1s = horizontal_sum(s1), ps = horizontal_sum(p);
  for (; i < M; ++i) {
    const T xc = x[i] - mu;
    const T gv = g[i] * activation_slope(a * xc + b, act, slope);
    s1s += gv;
    ps += gv * xc;
  }
  *s1_out = s1s;
  *p_out = ps;
}

// dx = A g' + B (x - mu) + C over a run.
template <typename T>
inline void run_grad_apply(const T* g, const T* x, T* dx, int64_t M, T mu, T a, T b, int64_t act, T slope,
                           T A, T B, T C) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec va(a), vb(b), vmu(mu), vslope(slope), vA(A), vB(B), vC(C);
  int64_t i = 0;
  for (; i + W <= M; i += W) {
    const Vec xc = Vec::loadu(x + i) - vmu;
    Vec gv = Vec::loadu(g + i);
    if (act != kActNone) gv = mask_grad_vec(gv, at::vec::fmadd(xc, va, vb), act, vslope);
    at::vec::fmadd(gv, vA, at::vec::fmadd(xc, vB, vC)).store(dx + i);
  }
  for (; i < M; ++i) {
    const T xc = x[i] - mu;
    const T gv = g[i] * activation_slope(a * xc + b, act, slope);
    dx[i] = A * gv + B * xc + C;
  }
}

}  // namespace cpu
}  // namespace cyclegan_ext
