// Vectorised loops over one channels_last pixel row x[0..C): every element has its own
// channel's coefficients, read from per-channel arrays.
#pragma once

#include "vec_loops.h"

namespace cyclegan_ext {
namespace cpu {

template <typename T>
inline void row_accumulate(const T* x, T* sum, int64_t C) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  int64_t c = 0;
  for (; c + W <= C; c += W) (Vec::loadu(sum + c) + Vec::loadu(x + c)).store(sum + c);
  for (; c < C; ++c) sum[c] += x[c];
}

// d += x - mean, q += (x - mean)^2
template <typename T>
inline void row_centered_accumulate(const T* x, const T* mean, T* d, T* q, int64_t C) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  int64_t c = 0;
  for (; c + W <= C; c += W) {
    const Vec a = Vec::loadu(x + c) - Vec::loadu(mean + c);
    (Vec::loadu(d + c) + a).store(d + c);
    at::vec::fmadd(a, a, Vec::loadu(q + c)).store(q + c);
  }
  for (; c < C; ++c) {
    const T a = x[c] - mean[c];
    d[c] += a;
    q[c] += a * a;
  }
}

template <typename T>
inline void row_apply(const T* x, T* y, const T* mu, const T* a, const T* b, int64_t C, int64_t act, T slope) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec vslope(slope);
  int64_t c = 0;
  for (; c + W <= C; c += W) {
    const Vec v = at::vec::fmadd(Vec::loadu(x + c) - Vec::loadu(mu + c), Vec::loadu(a + c), Vec::loadu(b + c));
    activate_vec(v, act, vslope).store(y + c);
  }
  for (; c < C; ++c) y[c] = activate(a[c] * (x[c] - mu[c]) + b[c], act, slope);
}

// s1 += g', p += g' (x - mu), g' = g * act'(a (x - mu) + b)
template <typename T>
inline void row_grad_sums(const T* g, const T* x, const T* mu, const T* a, const T* b, T* s1, T* p, int64_t C,
                          int64_t act, T slope) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec vslope(slope);
  int64_t c = 0;
  for (; c + W <= C; c += W) {
    const Vec xc = Vec::loadu(x + c) - Vec::loadu(mu + c);
    Vec gv = Vec::loadu(g + c);
    if (act != kActNone) {
      gv = mask_grad_vec(gv, at::vec::fmadd(xc, Vec::loadu(a + c), Vec::loadu(b + c)), act, vslope);
    }
    (Vec::loadu(s1 + c) + gv).store(s1 + c);
    at::vec::fmadd(gv, xc, Vec::loadu(p + c)).store(p + c);
  }
  for (; c < C; ++c) {
    const T xc = x[c] - mu[c];
    const T gv = g[c] * activation_slope(a[c] * xc + b[c], act, slope);
    s1[c] += gv;
    p[c] += gv * xc;
  }
}

// dx = A g' + B (x - mu) + Cc
template <typename T>
inline void row_grad_apply(const T* g, const T* x, T* dx, const T* mu, const T* a, const T* b, const T* A,
                           const T* B, const T* Cc, int64_t C, int64_t act, T slope) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec vslope(slope);
  int64_t c = 0;
  for (; c + W <= C; c += W) {
    const Vec xc = Vec::loadu(x + c) - Vec::loadu(mu + c);
    Vec gv = Vec::loadu(g + c);
    if (act != kActNone) {
      gv = mask_grad_vec(gv, at::vec::fmadd(xc, Vec::loadu(a + c), Vec::loadu(b + c)), act, vslope);
    }
    at::vec::fmadd(gv, Vec::loadu(A + c), at::vec::fmadd(xc, Vec::loadu(B + c), Vec::loadu(Cc + c))).store(dx + c);
  }
  for (; c < C; ++c) {
    const T xc = x[c] - mu[c];
    const T gv = g[c] * activation_slope(a[c] * xc + b[c], act, slope);
    dx[c] = A[c] * gv + B[c] * xc + Cc[c];
  }
}

}  // namespace cpu
}  // namespace cyclegan_ext
