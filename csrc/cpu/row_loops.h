// Vectorised loops over one channels_last pixel row x[0..C): every element has its own
// channel's coefficients, read from per-channel arrays.
#pragma once

#include "vec_loops.h"

namespace cyclegan_ext {
namespace cpu {

// Column moments of a channels_last block (rows r of C values, row stride C): exact
// two-pass per channel with the first pass's rounding correction. The channels are walked
// in chunks of NV vectors whose accumulators stay in registers while the rows stream by;
// the chunk's rows (rows x NV vectors) stay in L1 between the two passes.
template <typename T, int NV>
inline void column_chunk_moments(const T* x, int64_t rows, int64_t C, int64_t c0, T* mean, T* m2) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const T count = T(rows);
  Vec s[NV];
  for (int k = 0; k < NV; ++k) s[k] = Vec(T(0));
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * C + c0;
    for (int k = 0; k < NV; ++k) s[k] += Vec::loadu(row + k * W);
  }
  Vec mu[NV], d[NV], q[NV];
  for (int k = 0; k < NV; ++k) {
    mu[k] = s[k] / Vec(count);
    d[k] = Vec(T(0));
    q[k] = Vec(T(0));
  }
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * C + c0;
    for (int k = 0; k < NV; ++k) {
      const Vec a = Vec::loadu(row + k * W) - mu[k];
      d[k] += a;
      q[k] = at::vec::fmadd(a, a, q[k]);
    }
  }
  const Vec vcount(count);
  for (int k = 0; k < NV; ++k) {
    (mu[k] + d[k] / vcount).store(mean + c0 + k * W);
    // as corrected_two_pass (norm_math.h): d (d / count) overflows only where q has
    at::vec::maximum(q[k] - d[k] * (d[k] / vcount), Vec(T(0))).store(m2 + c0 + k * W);
  }
}

template <typename T>
inline void column_scalar_moments(const T* x, int64_t rows, int64_t C, int64_t c, T* mean, T* m2) {
  T sum = T(0);
  for (int64_t r = 0; r < rows; ++r) sum += x[r * C + c];
  const T mu = sum / T(rows);
  T d = T(0), q = T(0);
  for (int64_t r = 0; r < rows; ++r) {
    const T a = x[r * C + c] - mu;
    d += a;
    q += a * a;
  }
  corrected_two_pass(mu, d, q, T(rows), mean + c, m2 + c);
}

// mean[c], m2[c] for every channel of a channels_last block.
template <typename T>
inline void block_column_moments(const T* x, int64_t rows, int64_t C, T* mean, T* m2) {
  constexpr int64_t W = Vectorized<T>::size();
  int64_t c = 0;
  for (; c + 4 * W <= C; c += 4 * W) column_chunk_moments<T, 4>(x, rows, C, c, mean, m2);
  for (; c + W <= C; c += W) column_chunk_moments<T, 1>(x, rows, C, c, mean, m2);
  for (; c < C; ++c) column_scalar_moments(x, rows, C, c, mean, m2);
}

// Column sums S1 = sum g', Ps = sum g' xs of a channels_last block, chunked as above; xs =
// x * scale - shift per channel, as in vec_loops.h.
template <typename T, int NV>
inline void column_chunk_grad_sums(const T* g, const T* x, int64_t rows, int64_t C, int64_t c0, const T* scale,
                                   const T* shift, const T* a, const T* b, T* s1, T* p, int64_t act, T slope) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec vslope(slope);
  Vec vs1[NV], vp[NV], vscale[NV], vshift[NV], va[NV], vb[NV];
  for (int k = 0; k < NV; ++k) {
    vs1[k] = Vec(T(0));
    vp[k] = Vec(T(0));
    vscale[k] = Vec::loadu(scale + c0 + k * W);
    vshift[k] = Vec::loadu(shift + c0 + k * W);
    va[k] = Vec::loadu(a + c0 + k * W);
    vb[k] = Vec::loadu(b + c0 + k * W);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t off = r * C + c0;
    for (int k = 0; k < NV; ++k) {
      const Vec xc = at::vec::fmsub(Vec::loadu(x + off + k * W), vscale[k], vshift[k]);
      Vec gv = Vec::loadu(g + off + k * W);
      if (act != kActNone) gv = mask_grad_vec(gv, at::vec::fmadd(xc, va[k], vb[k]), act, vslope);
      vs1[k] += gv;
      vp[k] = at::vec::fmadd(gv, xc, vp[k]);
    }
  }
  for (int k = 0; k < NV; ++k) {
    vs1[k].store(s1 + c0 + k * W);
    vp[k].store(p + c0 + k * W);
  }
}

template <typename T>
inline void block_column_grad_sums(const T* g, const T* x, int64_t rows, int64_t C, const T* scale,
                                   const T* shift, const T* a, const T* b, T* s1, T* p, int64_t act, T slope) {
  constexpr int64_t W = Vectorized<T>::size();
  int64_t c = 0;
  for (; c + 4 * W <= C; c += 4 * W) {
    column_chunk_grad_sums<T, 4>(g, x, rows, C, c, scale, shift, a, b, s1, p, act, slope);
  }
  for (; c + W <= C; c += W) column_chunk_grad_sums<T, 1>(g, x, rows, C, c, scale, shift, a, b, s1, p, act, slope);
  for (; c < C; ++c) {
    T ss = T(0), pp = T(0);
    for (int64_t r = 0; r < rows; ++r) {
      const T xc = x[r * C + c] * scale[c] - shift[c];
      const T gv = g[r * C + c] * activation_slope(a[c] * xc + b[c], act, slope);
      ss += gv;
      pp += gv * xc;
    }
    s1[c] = ss;
    p[c] = pp;
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

// dx = A g' + B xs + Cc
template <typename T>
inline void row_grad_apply(const T* g, const T* x, T* dx, const T* scale, const T* shift, const T* a, const T* b,
                           const T* A, const T* B, const T* Cc, int64_t C, int64_t act, T slope) {
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  const Vec vslope(slope);
  int64_t c = 0;
  for (; c + W <= C; c += W) {
    const Vec xc = at::vec::fmsub(Vec::loadu(x + c), Vec::loadu(scale + c), Vec::loadu(shift + c));
    Vec gv = Vec::loadu(g + c);
    if (act != kActNone) {
      gv = mask_grad_vec(gv, at::vec::fmadd(xc, Vec::loadu(a + c), Vec::loadu(b + c)), act, vslope);
    }
    at::vec::fmadd(gv, Vec::loadu(A + c), at::vec::fmadd(xc, Vec::loadu(B + c), Vec::loadu(Cc + c))).store(dx + c);
  }
  for (; c < C; ++c) {
    const T xc = x[c] * scale[c] - shift[c];
    const T gv = g[c] * activation_slope(a[c] * xc + b[c], act, slope);
    dx[c] = A[c] * gv + B[c] * xc + Cc[c];
  }
}

}  // namespace cpu
}  // namespace cyclegan_ext
