// CPU kernels of fused_norm_forward / fused_norm_backward.
//
// Forward: one statistics pass, per-(n, c) coefficients (norm_math.h), one apply pass.
// Backward: one reduction pass (S1, P), per-(n, c) coefficients, one apply pass.
// Instance norm (rho = None) needs no cross-channel totals, so each NCHW plane is reduced
// and applied while it is still in cache. AdaLIN/LIN work sample by sample, so that the
// second pass over a sample finds it in the last-level cache.
//
// Results do not depend on the thread count: every reduction runs over a fixed partition
// (a plane, or a fixed block of channels_last rows) and partials are combined in order.
//
// Range: the passes run in the scalar type. Where float32 statistics overflowed or underflowed
// (moments_reliable, norm_math.h), those of the plane or sample are recomputed from x in
// double, a slow scalar pass that only such data pays for.
#include "../norm_ops.h"
#include "row_loops.h"

#include <ATen/Dispatch.h>
#include <ATen/EmptyTensor.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace cyclegan_ext {
namespace cpu {
namespace {

struct Shape {
  int64_t N, C, M;
};

Shape shape_of(const at::Tensor& x) { return {x.size(0), x.size(1), x.size(2) * x.size(3)}; }

// Rows of a channels_last sample reduced together: about 64 KiB, so the block's second
// pass reads from L1/L2. Depends only on C, never on the thread count.
int64_t rows_per_block(int64_t C, int64_t M) {
  return std::min<int64_t>(M, std::max<int64_t>(4, 16384 / C));
}

// Grain for parallel loops over whole planes / rows: about 32K elements per task.
int64_t grain_for(int64_t elements_per_item) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, elements_per_item));
}

// Where channel c of a sample lives: element i of the channel at c * plane_stride + i * elem_stride.
struct SampleLayout {
  int64_t plane_stride, elem_stride;
};
SampleLayout nchw_sample(const Shape& s) { return {s.M, 1}; }
SampleLayout nhwc_sample(const Shape& s) { return {1, s.C}; }

// Exact mean and M2 of x[0], x[stride], ... (M values) in double: corrected two-pass.
template <typename T>
void wide_moments(const T* x, int64_t M, int64_t stride, double* mean, double* m2) {
  double sum = 0.0;
  for (int64_t i = 0; i < M; ++i) sum += static_cast<double>(x[i * stride]);
  const double mu = sum / static_cast<double>(M);
  double d = 0.0, q = 0.0;
  for (int64_t i = 0; i < M; ++i) {
    const double a = static_cast<double>(x[i * stride]) - mu;
    d += a;
    q += a * a;
  }
  corrected_two_pass(mu, d, q, static_cast<double>(M), mean, m2);
}

// All statistics of one sample xn recomputed in double (its float32 ones were not reliable).
template <typename T>
void wide_sample_statistics(const T* xn, const Shape& s, SampleLayout layout, bool unbiased, T eps, T* mean_c,
                            T* rstd_c, T* mean_l, T* rstd_l) {
  std::vector<double> mean(s.C), m2(s.C);
  for (int64_t c = 0; c < s.C; ++c) {
    wide_moments(xn + c * layout.plane_stride, s.M, layout.elem_stride, &mean[c], &m2[c]);
  }
  double ml, rl;
  sample_statistics(mean.data(), m2.data(), s.C, s.M, unbiased, static_cast<double>(eps), &ml, &rl);
  for (int64_t c = 0; c < s.C; ++c) {
    mean_c[c] = narrow<T>(mean[c]);
    rstd_c[c] = narrow<T>(m2[c]);  // now the rstd
  }
  *mean_l = narrow<T>(ml);
  *rstd_l = narrow<T>(rl);
}

template <typename T>
struct Params {
  const T* weight;  // (N, C)
  const T* bias;    // (N, C)
  const T* rho;     // (C,)
  bool instance;    // rho is identically 1: no cross-channel totals needed
};

// Per-channel forward coefficients of sample n (data xn); rstd_c holds the m2 of each channel
// on entry.
template <typename T>
void sample_forward_coefficients(int64_t n, const T* xn, const Shape& s, SampleLayout layout, const Params<T>& p,
                                 bool unbiased, T eps, T* mean_c, T* rstd_c, T* mean_l, T* rstd_l, T* a, T* b) {
  T* mc = mean_c + n * s.C;
  T* rc = rstd_c + n * s.C;
  const bool reliable = sample_statistics(mc, rc, s.C, s.M, unbiased, eps, mean_l + n, rstd_l + n);
  if (has_wider_type<T> && !reliable) {
    wide_sample_statistics(xn, s, layout, unbiased, eps, mc, rc, mean_l + n, rstd_l + n);
  }
  for (int64_t c = 0; c < s.C; ++c) {
    forward_coefficients(p.weight[n * s.C + c], p.bias[n * s.C + c], p.rho[c], mc[c], rc[c], mean_l[n],
                         rstd_l[n], a + c, b + c);
  }
}

// ---------------------------------------------------------------- forward, NCHW

// Mean and rstd of one NCHW plane, and its M2 for the layer statistics. Returns false where
// the plane's statistics had to be recomputed in double: its sample's layer statistics then
// must be too.
template <typename T>
bool plane_statistics(const T* x, int64_t M, bool unbiased, T eps, T* mean, T* m2, T* rstd) {
  const T denominator = T(M) - (unbiased ? T(1) : T(0));
  run_moments(x, M, mean, m2);
  if (has_wider_type<T> && !moments_reliable(*mean, *m2, denominator, eps)) {
    double wide_mean, wide_m2;
    wide_moments(x, M, 1, &wide_mean, &wide_m2);
    *mean = narrow<T>(wide_mean);
    *rstd = narrow<T>(rstd_from_m2(wide_m2, static_cast<double>(denominator), static_cast<double>(eps)));
    return false;
  }
  *rstd = rstd_from_m2(*m2, denominator, eps);
  return true;
}

template <typename T>
void forward_nchw(const T* x, T* y, const Shape& s, const Params<T>& p, bool unbiased, T eps, int64_t act, T slope,
                  T* mean_c, T* rstd_c, T* mean_l, T* rstd_l) {
  const int64_t C = s.C, M = s.M;
  if (p.instance) {
    std::vector<T> m2(s.N * C);
    std::vector<char> reliable(s.N * C);  // char, not vector<bool>: written from several threads
    at::parallel_for(0, s.N * C, grain_for(M), [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        T mean, rstd;
        reliable[nc] = plane_statistics(x + nc * M, M, unbiased, eps, &mean, &m2[nc], &rstd);
        mean_c[nc] = mean;
        rstd_c[nc] = rstd;
        T a, b;
        forward_coefficients(p.weight[nc], p.bias[nc], T(1), mean, rstd, T(0), T(0), &a, &b);
        run_apply(x + nc * M, y + nc * M, M, mean, a, b, act, slope);
      }
    });
    // Layer statistics are part of the op's outputs even when unused. Where they need the
    // double recomputation, the planes' own statistics (already applied) are left as they are.
    std::vector<T> unused_mean(C), unused_rstd(C);
    for (int64_t n = 0; n < s.N; ++n) {
      T* mc = mean_c + n * C;
      const bool planes_ok = std::all_of(reliable.begin() + n * C, reliable.begin() + (n + 1) * C,
                                         [](char ok) { return ok != 0; });
      const bool ok = sample_statistics(mc, m2.data() + n * C, C, M, unbiased, eps, mean_l + n, rstd_l + n);
      if (has_wider_type<T> && !(ok && planes_ok)) {
        wide_sample_statistics(x + n * C * M, s, nchw_sample(s), unbiased, eps, unused_mean.data(),
                               unused_rstd.data(), mean_l + n, rstd_l + n);
      }
    }
    return;
  }
  std::vector<T> a(C), b(C);
  for (int64_t n = 0; n < s.N; ++n) {
    const T* xn = x + n * C * M;
    at::parallel_for(0, C, grain_for(M), [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) run_moments(xn + c * M, M, mean_c + n * C + c, rstd_c + n * C + c);
    });
    sample_forward_coefficients(n, xn, s, nchw_sample(s), p, unbiased, eps, mean_c, rstd_c, mean_l, rstd_l,
                                a.data(), b.data());
    at::parallel_for(0, C, grain_for(M), [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        run_apply(xn + c * M, y + (n * C + c) * M, M, mean_c[n * C + c], a[c], b[c], act, slope);
      }
    });
  }
}

// ---------------------------------------------------------------- forward, channels_last

// Channel moments of one channels_last sample x (M rows of C), blockwise two-pass, blocks
// combined in order with Chan's formula. Writes mean and m2 per channel.
template <typename T>
void sample_moments_nhwc(const T* x, int64_t M, int64_t C, T* mean, T* m2) {
  const int64_t rows = rows_per_block(C, M);
  const int64_t blocks = (M + rows - 1) / rows;
  std::vector<T> block_mean(blocks * C), block_m2(blocks * C);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t r0 = blk * rows, r1 = std::min(M, r0 + rows);
      block_column_moments(x + r0 * C, r1 - r0, C, block_mean.data() + blk * C, block_m2.data() + blk * C);
    }
  });
  // Chan combination of the blocks in order; every channel of a block has the same count,
  // so the weights are scalars and the channels vectorise.
  using Vec = Vectorized<T>;
  constexpr int64_t W = Vec::size();
  std::copy(block_mean.begin(), block_mean.begin() + C, mean);
  std::copy(block_m2.begin(), block_m2.begin() + C, m2);
  T count = T(std::min(M, rows));
  for (int64_t blk = 1; blk < blocks; ++blk) {
    const T block_count = T(std::min(M, (blk + 1) * rows) - blk * rows);
    const T total = count + block_count;
    const T w = block_count / total, cw = count * w;
    const T* bm = block_mean.data() + blk * C;
    const T* bq = block_m2.data() + blk * C;
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      const Vec m = Vec::loadu(mean + c);
      const Vec delta = Vec::loadu(bm + c) - m;
      at::vec::fmadd(delta, Vec(w), m).store(mean + c);
      (Vec::loadu(m2 + c) + Vec::loadu(bq + c) + delta * delta * Vec(cw)).store(m2 + c);
    }
    for (; c < C; ++c) {
      const T delta = bm[c] - mean[c];
      mean[c] += delta * w;
      m2[c] += bq[c] + delta * delta * cw;
    }
    count = total;
  }
}

template <typename T>
void forward_nhwc(const T* x, T* y, const Shape& s, const Params<T>& p, bool unbiased, T eps, int64_t act, T slope,
                  T* mean_c, T* rstd_c, T* mean_l, T* rstd_l) {
  const int64_t C = s.C, M = s.M;
  std::vector<T> a(C), b(C);
  for (int64_t n = 0; n < s.N; ++n) {
    const T* xn = x + n * M * C;
    T* yn = y + n * M * C;
    sample_moments_nhwc(xn, M, C, mean_c + n * C, rstd_c + n * C);
    sample_forward_coefficients(n, xn, s, nhwc_sample(s), p, unbiased, eps, mean_c, rstd_c, mean_l, rstd_l,
                                a.data(), b.data());
    const T* mu = mean_c + n * C;
    at::parallel_for(0, M, grain_for(C), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) row_apply(xn + r * C, yn + r * C, mu, a.data(), b.data(), C, act, slope);
    });
  }
}

// ---------------------------------------------------------------- backward

template <typename T>
struct Saved {
  const T* mean_c;
  const T* rstd_c;
  const T* mean_l;
  const T* rstd_l;
};

template <typename T>
struct GradOut {
  T* dx;
  T* dweight;  // (N, C)
  T* dbias;    // (N, C)
  T* drho;     // (N, C)
};

// How the backward passes see channel nc: xs = x * scale - shift = (x - mu_c) * scale
// (centring_scale), and the forward's a (in xs units: a / scale), b for the activation mask.
template <typename T>
struct Centring {
  T scale, shift, a, b;
};

template <typename T>
Centring<T> centring(int64_t n, int64_t c, int64_t C, const Params<T>& p, const Saved<T>& st) {
  const int64_t nc = n * C + c;
  Centring<T> k;
  forward_coefficients(p.weight[nc], p.bias[nc], p.rho[c], st.mean_c[nc], st.rstd_c[nc], st.mean_l[n], st.rstd_l[n],
                       &k.a, &k.b);
  k.scale = centring_scale(st.rstd_c[nc], st.mean_c[nc]);
  k.shift = st.mean_c[nc] * k.scale;
  k.a /= k.scale;
  return k;
}

// The Centring of every channel of sample n, as arrays.
template <typename T>
struct SampleCentring {
  std::vector<T> scale, shift, a, b;
  explicit SampleCentring(int64_t C) : scale(C), shift(C), a(C), b(C) {}
  void fill(int64_t n, int64_t C, const Params<T>& p, const Saved<T>& st) {
    for (int64_t c = 0; c < C; ++c) {
      const Centring<T> k = centring(n, c, C, p, st);
      scale[c] = k.scale;
      shift[c] = k.shift;
      a[c] = k.a;
      b[c] = k.b;
    }
  }
};

// From per-channel S1, Ps of sample n: apply coefficients into A, B, Cc and parameter grads.
template <typename T>
void sample_backward_coefficients(int64_t n, const Shape& s, const Params<T>& p, const Saved<T>& st, bool unbiased,
                                  const T* scale, const T* s1, const T* pp, T* A, T* B, T* Cc,
                                  const GradOut<T>& out) {
  const int64_t C = s.C;
  const T* gamma = p.weight + n * C;
  const T* mc = st.mean_c + n * C;
  T T1, T2;
  sample_backward_totals(gamma, p.rho, mc, scale, s1, pp, C, st.mean_l[n], st.rstd_l[n], &T1, &T2);
  for (int64_t c = 0; c < C; ++c) {
    const BackwardChannel<T> r = backward_channel(gamma[c], p.rho[c], mc[c], st.rstd_c[n * C + c], scale[c], s1[c],
                                                  pp[c], st.mean_l[n], st.rstd_l[n], T1, T2, C, s.M, unbiased);
    A[c] = r.A;
    B[c] = r.B;
    Cc[c] = r.C;
    out.dweight[n * C + c] = r.dgamma;
    out.dbias[n * C + c] = r.dbeta;
    out.drho[n * C + c] = r.drho;
  }
}

template <typename T>
void backward_nchw(const T* g, const T* x, const Shape& s, const Params<T>& p, const Saved<T>& st, bool unbiased,
                   int64_t act, T slope, const GradOut<T>& out) {
  const int64_t C = s.C, M = s.M;
  if (p.instance) {
    // rho = 1: no layer term, each plane's gradient depends on that plane only.
    at::parallel_for(0, s.N * C, grain_for(M), [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / C;
        const Centring<T> k = centring(n, nc % C, C, p, st);
        T s1, pp;
        run_grad_sums(g + nc * M, x + nc * M, M, k.scale, k.shift, k.a, k.b, act, slope, &s1, &pp);
        const BackwardChannel<T> r = backward_channel(p.weight[nc], T(1), st.mean_c[nc], st.rstd_c[nc], k.scale, s1,
                                                      pp, st.mean_l[n], st.rstd_l[n], T(0), T(0), C, M, unbiased);
        out.dweight[nc] = r.dgamma;
        out.dbias[nc] = r.dbeta;
        out.drho[nc] = T(0);
        run_grad_apply(g + nc * M, x + nc * M, out.dx + nc * M, M, k.scale, k.shift, k.a, k.b, act, slope, r.A, r.B,
                       r.C);
      }
    });
    return;
  }
  SampleCentring<T> k(C);
  std::vector<T> s1(C), pp(C), A(C), B(C), Cc(C);
  for (int64_t n = 0; n < s.N; ++n) {
    const int64_t base = n * C * M;
    k.fill(n, C, p, st);
    at::parallel_for(0, C, grain_for(M), [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        run_grad_sums(g + base + c * M, x + base + c * M, M, k.scale[c], k.shift[c], k.a[c], k.b[c], act, slope,
                      &s1[c], &pp[c]);
      }
    });
    sample_backward_coefficients(n, s, p, st, unbiased, k.scale.data(), s1.data(), pp.data(), A.data(), B.data(),
                                 Cc.data(), out);
    at::parallel_for(0, C, grain_for(M), [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const int64_t off = base + c * M;
        run_grad_apply(g + off, x + off, out.dx + off, M, k.scale[c], k.shift[c], k.a[c], k.b[c], act, slope, A[c],
                       B[c], Cc[c]);
      }
    });
  }
}

template <typename T>
void backward_nhwc(const T* g, const T* x, const Shape& s, const Params<T>& p, const Saved<T>& st, bool unbiased,
                   int64_t act, T slope, const GradOut<T>& out) {
  const int64_t C = s.C, M = s.M;
  const int64_t rows = rows_per_block(C, M);
  const int64_t blocks = (M + rows - 1) / rows;
  SampleCentring<T> k(C);
  std::vector<T> s1(C), pp(C), A(C), B(C), Cc(C);
  std::vector<T> block_s1(blocks * C), block_p(blocks * C);
  for (int64_t n = 0; n < s.N; ++n) {
    const int64_t base = n * M * C;
    k.fill(n, C, p, st);
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t r0 = blk * rows, r1 = std::min(M, r0 + rows);
        block_column_grad_sums(g + base + r0 * C, x + base + r0 * C, r1 - r0, C, k.scale.data(), k.shift.data(),
                               k.a.data(), k.b.data(), block_s1.data() + blk * C, block_p.data() + blk * C, act,
                               slope);
      }
    });
    std::fill(s1.begin(), s1.end(), T(0));
    std::fill(pp.begin(), pp.end(), T(0));
    for (int64_t blk = 0; blk < blocks; ++blk) {
      for (int64_t c = 0; c < C; ++c) {
        s1[c] += block_s1[blk * C + c];
        pp[c] += block_p[blk * C + c];
      }
    }
    sample_backward_coefficients(n, s, p, st, unbiased, k.scale.data(), s1.data(), pp.data(), A.data(), B.data(),
                                 Cc.data(), out);
    at::parallel_for(0, M, grain_for(C), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t off = base + r * C;
        row_grad_apply(g + off, x + off, out.dx + off, k.scale.data(), k.shift.data(), k.a.data(), k.b.data(),
                       A.data(), B.data(), Cc.data(), C, act, slope);
      }
    });
  }
}

}  // namespace
}  // namespace cpu

namespace {

// Half-precision input on the CPU runs in float32 (the kernels are float/double only).
at::Tensor compute_input(const at::Tensor& t) {
  const auto st = t.scalar_type();
  return (st == at::kHalf || st == at::kBFloat16) ? t.to(at::kFloat) : t;
}

// Allocations straight from the CPU allocator: at::empty would go through the dispatcher,
// which at the tiny shapes of a batch-1 generator costs more than the kernel itself.
at::Tensor cpu_empty(at::IntArrayRef sizes, at::ScalarType dtype,
                     at::MemoryFormat format = at::MemoryFormat::Contiguous) {
  return at::detail::empty_cpu(sizes, dtype, /*pin_memory=*/false, format);
}

at::Tensor empty_in_layout(const at::Tensor& like, bool channels_last) {
  return cpu_empty(like.sizes(), like.scalar_type(),
                   channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}

// A saved statistic as a dense tensor of dtype acc: itself unless it must be converted.
at::Tensor dense_in(const at::Tensor& t, at::ScalarType acc) {
  if (t.scalar_type() == acc && t.is_contiguous()) return t;
  return t.to(acc).contiguous();
}

// The parameters as dense (N, C) / (C,) arrays in the compute dtype T, defaults filled in:
// O(N * C) host work, no tensor ops.
template <typename T>
struct DenseParams {
  std::vector<T> weight, bias, rho;
  bool instance;

  DenseParams(const OptionalTensor& w, const OptionalTensor& b, const OptionalTensor& r, int64_t N, int64_t C)
      : weight(fill(w, N, C, T(1))), bias(fill(b, N, C, T(0))), rho(fill(r, 1, C, T(1))), instance(!r.has_value()) {}

  cpu::Params<T> view() const { return {weight.data(), bias.data(), rho.data(), instance}; }

 private:
  static std::vector<T> fill(const OptionalTensor& p, int64_t rows, int64_t C, T default_value) {
    std::vector<T> dense(rows * C, default_value);
    if (!p.has_value()) return dense;
    const auto compute_type = c10::CppTypeToScalarType<T>::value;
    const at::Tensor t = p->scalar_type() == compute_type ? *p : p->to(compute_type);
    const ParamLayout layout = param_layout(t);
    const T* data = t.const_data_ptr<T>();
    for (int64_t n = 0; n < rows; ++n) {
      for (int64_t c = 0; c < C; ++c) dense[n * C + c] = data[n * layout.stride_n + c * layout.stride_c];
    }
    return dense;
  }
};

}  // namespace

ForwardResult fused_norm_forward_cpu(const at::Tensor& x_in, const OptionalTensor& weight, const OptionalTensor& bias,
                                     const OptionalTensor& rho, bool unbiased, double eps, int64_t activation,
                                     double negative_slope) {
  check_forward_inputs(x_in, weight, bias, rho, unbiased, eps, activation);
  if (x_in.numel() == 0) return empty_forward_result(x_in);
  const at::Tensor x = kernel_layout(compute_input(x_in));
  const bool channels_last = is_channels_last_layout(x);
  const auto acc = x.scalar_type();
  const cpu::Shape s = cpu::shape_of(x);
  at::Tensor y = empty_in_layout(x, channels_last);
  at::Tensor mean_c = cpu_empty({s.N, s.C}, acc), rstd_c = cpu_empty({s.N, s.C}, acc);
  at::Tensor mean_l = cpu_empty({s.N}, acc), rstd_l = cpu_empty({s.N}, acc);
  AT_DISPATCH_FLOATING_TYPES(acc, "fused_norm_forward_cpu", [&] {
    const DenseParams<scalar_t> dense(weight, bias, rho, s.N, s.C);
    const auto p = dense.view();
    auto run = channels_last ? cpu::forward_nhwc<scalar_t> : cpu::forward_nchw<scalar_t>;
    run(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), s, p, unbiased, static_cast<scalar_t>(eps), activation,
        static_cast<scalar_t>(negative_slope), mean_c.data_ptr<scalar_t>(), rstd_c.data_ptr<scalar_t>(),
        mean_l.data_ptr<scalar_t>(), rstd_l.data_ptr<scalar_t>());
  });
  if (y.scalar_type() != x_in.scalar_type()) y = y.to(x_in.scalar_type());
  return {y, mean_c, rstd_c, mean_l, rstd_l};
}

BackwardResult fused_norm_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x_in, const OptionalTensor& weight,
                                       const OptionalTensor& bias, const OptionalTensor& rho,
                                       const at::Tensor& mean_c, const at::Tensor& rstd_c, const at::Tensor& mean_l,
                                       const at::Tensor& rstd_l, bool unbiased, int64_t activation,
                                       double negative_slope) {
  check_forward_inputs(x_in, weight, bias, rho, unbiased, /*eps=*/0.0, activation);
  check_backward_inputs(grad_out, x_in, mean_c, rstd_c, mean_l, rstd_l);
  if (x_in.numel() == 0) return empty_backward_result(x_in);
  const at::Tensor x = kernel_layout(compute_input(x_in));
  const bool channels_last = is_channels_last_layout(x);
  const auto acc = x.scalar_type();
  const auto layout = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const at::Tensor g = compute_input(grad_out).contiguous(layout);
  const cpu::Shape s = cpu::shape_of(x);
  const at::Tensor mc = dense_in(mean_c, acc), rc = dense_in(rstd_c, acc);
  const at::Tensor ml = dense_in(mean_l, acc), rl = dense_in(rstd_l, acc);
  at::Tensor dx = empty_in_layout(x, channels_last);
  at::Tensor dw = cpu_empty({s.N, s.C}, acc), db = cpu_empty({s.N, s.C}, acc), drho = cpu_empty({s.N, s.C}, acc);
  AT_DISPATCH_FLOATING_TYPES(acc, "fused_norm_backward_cpu", [&] {
    const DenseParams<scalar_t> dense(weight, bias, rho, s.N, s.C);
    const auto p = dense.view();
    const cpu::Saved<scalar_t> st{mc.data_ptr<scalar_t>(), rc.data_ptr<scalar_t>(), ml.data_ptr<scalar_t>(),
                                  rl.data_ptr<scalar_t>()};
    const cpu::GradOut<scalar_t> out{dx.data_ptr<scalar_t>(), dw.data_ptr<scalar_t>(), db.data_ptr<scalar_t>(),
                                     drho.data_ptr<scalar_t>()};
    auto run = channels_last ? cpu::backward_nhwc<scalar_t> : cpu::backward_nchw<scalar_t>;
    run(g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), s, p, st, unbiased, activation,
        static_cast<scalar_t>(negative_slope), out);
  });
  if (dx.scalar_type() != x_in.scalar_type()) dx = dx.to(x_in.scalar_type());
  return {dx, dw, db, drho};
}

}  // namespace cyclegan_ext
