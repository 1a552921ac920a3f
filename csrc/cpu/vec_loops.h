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

// Four independent accumulators: a single vector add / fma chain is latency-bound (about
// one vector per 4 cycles), four chains keep the load ports busy on cache-resident data.
template <typename T>
struct Acc4 {
  Vectorized<T> v[4] = {Vectorized<T>(T(0)), Vectorized<T>(T(0)), Vectorized<T>(T(0)), Vectorized<T>(T(0))};
  T sum() const { return horizontal_sum((v[0] + v[1]) + (v[2] + v[3])); }
};

// Mean and sum of squared deviations of x[0..M): exact two-pass with the rounding
// correction of the first pass (Chan, Golub & LeVeque's corrected two-pass algorithm).
// Meant for a run that stays in cache between the two passes.
template <typename T>
inline void run_moments(const T* x, int64_t M, T* mean_out, T* m2_out) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  Acc4<T> s;
  int64_t i = 0;
  for (; i + 4 * W <= M; i += 4 * W) {
    for (int k = 0; k < 4; ++k) s.v[k] += Vec::loadu(x + i + k * W);
  }
  T sum = s.sum();
  for (; i < M; ++i) sum += x[i];
  const T mean = sum / T(M);
  const Vec vmean(mean);
  Acc4<T> d, q;
  i = 0;
  for (; i + 4 * W <= M; i += 4 * W) {
    for (int k = 0; k < 4; ++k) {
      const Vec a = Vec::loadu(x + i + k * W) - vmean;
      d.v[k] += a;
      q.v[k] = at::vec::fmadd(a, a, q.v[k]);
    }
  }
  T ds = d.sum(), qs = q.sum();
  for (; i < M; ++i) {
    const T a = x[i] - mean;
    ds += a;
    qs += a * a;
  }
  corrected_two_pass(mean, ds, qs, T(M), mean_out, m2_out);
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

// The backward's loops work on xs = x * scale - shift = (x - mu) * scale (norm_math.h
// centring_scale: exact, and one fused multiply-subtract like the subtraction it replaces),
// with the forward coefficient a given in those units (a / scale) for the activation mask.

// S1 = sum g', Ps = sum g' xs over a run, g' = g * act'(a xs + b).
template <typename T>
inline void run_grad_sums(const T* g, const T* x, int64_t M, T scale, T shift, T a, T b, int64_t act, T slope,
                          T* s1_out, T* p_out) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec va(a), vb(b), vscale(scale), vshift(shift), vslope(slope);
  Acc4<T> s1, p;
  int64_t i = 0;
  for (; i + 4 * W <= M; i += 4 * W) {
    for (int k = 0; k < 4; ++k) {
      const Vec xc = at::vec::fmsub(Vec::loadu(x + i + k * W), vscale, vshift);
      Vec gv = Vec::loadu(g + i + k * W);
      if (act != kActNone) gv = mask_grad_vec(gv, at::vec::fmadd(xc, va, vb), act, vslope);
      s1.v[k] += gv;
      p.v[k] = at::vec::fmadd(gv, xc, p.v[k]);
    }
  }
  T s1s = s1.sum(), ps = p.sum();
  for (; i < M; ++i) {
    const T xc = x[i] * scale - shift;
    const T gv = g[i] * activation_slope(a * xc + b, act, slope);
    s1s += gv;
    ps += gv * xc;
  }
  *s1_out = s1s;
  *p_out = ps;
}

// dx = A g' + B xs + C over a run.
template <typename T>
inline void run_grad_apply(const T* g, const T* x, T* dx, int64_t M, T scale, T shift, T a, T b, int64_t act,
                           T slope, T A, T B, T C) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec va(a), vb(b), vscale(scale), vshift(shift), vslope(slope), vA(A), vB(B), vC(C);
  int64_t i = 0;
  for (; i + W <= M; i += W) {
    const Vec xc = at::vec::fmsub(Vec::loadu(x + i), vscale, vshift);
    Vec gv = Vec::loadu(g + i);
    if (act != kActNone) gv = mask_grad_vec(gv, at::vec::fmadd(xc, va, vb), act, vslope);
    at::vec::fmadd(gv, vA, at::vec::fmadd(xc, vB, vC)).store(dx + i);
  }
  for (; i < M; ++i) {
    const T xc = x[i] * scale - shift;
    const T gv = g[i] * activation_slope(a * xc + b, act, slope);
    dx[i] = A * gv + B * xc + C;
  }
}

}  // namespace cpu
}  // namespace cyclegan_ext
