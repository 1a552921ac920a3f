// Op schemas of the cyclegan_ext library and the checks every backend shares.
#include "norm_ops.h"
#include "norm_math.h"

#include <Python.h>
#include <torch/library.h>

// An empty module, so that `import cyclegan_ext._C` loads this library and runs the
// TORCH_LIBRARY registrations below.
extern "C" PyObject* PyInit__C(void) {
#ifdef CYCLEGAN_EXT_NEEDS_AVX2
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    PyErr_SetString(PyExc_ImportError,
                    "cyclegan_ext._C was built with AVX2/FMA but this CPU lacks them; rebuild on this "
                    "machine, or with CYCLEGAN_EXT_CPU_ISA=default");
    return nullptr;
  }
#endif
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

namespace cyclegan_ext {

namespace {
bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

void check_param(const at::Tensor& p, const char* name, const at::Tensor& x,
                 std::initializer_list<int64_t> shape) {
  TORCH_CHECK_VALUE(p.device() == x.device(), "fused_norm: ", name, " is on ", p.device(),
                    " but x is on ", x.device(), "; move them to the same device");
  TORCH_CHECK_TYPE(p.scalar_type() == x.scalar_type() ||
                       (p.scalar_type() == at::kFloat &&
                        (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16)),
                   "fused_norm: ", name, " has dtype ", p.scalar_type(), " but x has dtype ",
                   x.scalar_type(), "; expected the same dtype (or float32 for half-precision x)");
  TORCH_CHECK_VALUE(p.sizes().equals(shape), "fused_norm: expected ", name, " of shape ",
                    at::IntArrayRef(shape), ", got ", p.sizes());
}
}  // namespace

void check_forward_inputs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          const c10::optional<at::Tensor>& rho, bool unbiased, double eps,
                          int64_t activation) {
  TORCH_CHECK_VALUE(x.dim() == 4, "fused_norm: expected x of shape (N, C, H, W), got ", x.sizes());
  TORCH_CHECK_TYPE(is_float_type(x.scalar_type()), "fused_norm: expected x to be a floating point tensor, got ",
                   x.scalar_type());
  const int64_t N = x.size(0), C = x.size(1), M = x.size(2) * x.size(3);
  TORCH_CHECK_VALUE(N > 0 && C > 0 && M > 0, "fused_norm: x must not be empty, got shape ", x.sizes());
  TORCH_CHECK_VALUE(!unbiased || M > 1, "fused_norm: unbiased variance needs H*W > 1, got x of shape ",
                    x.sizes());
  TORCH_CHECK_VALUE(eps >= 0, "fused_norm: eps must be >= 0, got ", eps);
  TORCH_CHECK_VALUE(activation >= kActNone && activation <= kActLeakyRelu,
                    "fused_norm: unknown activation code ", activation);
  check_param(weight, "weight", x, {N, C});
  check_param(bias, "bias", x, {N, C});
  if (rho.has_value()) check_param(*rho, "rho", x, {C});
}

void check_backward_inputs(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& mean_c,
                           const at::Tensor& rstd_c, const at::Tensor& mean_l, const at::Tensor& rstd_l) {
  TORCH_CHECK_VALUE(grad_out.sizes().equals(x.sizes()), "fused_norm_backward: grad_out of shape ",
                    grad_out.sizes(), " does not match x of shape ", x.sizes());
  TORCH_CHECK_TYPE(grad_out.scalar_type() == x.scalar_type(), "fused_norm_backward: grad_out has dtype ",
                   grad_out.scalar_type(), ", x has ", x.scalar_type());
  TORCH_CHECK_VALUE(grad_out.device() == x.device(), "fused_norm_backward: grad_out and x on different devices");
  const int64_t N = x.size(0), C = x.size(1);
  TORCH_CHECK_VALUE(mean_c.sizes().equals({N, C}) && rstd_c.sizes().equals({N, C}) &&
                        mean_l.sizes().equals({N}) && rstd_l.sizes().equals({N}),
                    "fused_norm_backward: saved statistics have the wrong shapes");
}

at::Tensor kernel_layout(const at::Tensor& x) {
  if (x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast)) return x;
  return x.contiguous();
}

bool is_channels_last_layout(const at::Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor as_param_matrix(const at::Tensor& t, at::ScalarType acc) {
  return t.to(acc).contiguous();
}

at::Tensor rho_vector(const c10::optional<at::Tensor>& rho, int64_t C, at::ScalarType acc,
                      const at::Device& device) {
  if (rho.has_value()) return rho->to(acc).contiguous();
  return at::ones({C}, at::TensorOptions().dtype(acc).device(device));
}

TORCH_LIBRARY(cyclegan_ext, m) {
  // y, mean_c (N, C), rstd_c (N, C), mean_l (N,), rstd_l (N,). Statistics are in the
  // accumulation dtype (float32, or float64 for float64 x). rho = None is instance norm.
  m.def(
      "fused_norm_forward(Tensor x, Tensor weight, Tensor bias, Tensor? rho, bool unbiased, "
      "float eps, int activation, float negative_slope) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // grad_x (like x), and per-sample grad_weight, grad_bias, grad_rho, each (N, C) in the
  // accumulation dtype (grad_rho is zero when rho is None).
  m.def(
      "fused_norm_backward(Tensor grad_out, Tensor x, Tensor weight, Tensor bias, Tensor? rho, "
      "Tensor mean_c, Tensor rstd_c, Tensor mean_l, Tensor rstd_l, bool unbiased, int activation, "
      "float negative_slope) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(cyclegan_ext, CPU, m) {
  m.impl("fused_norm_forward", &fused_norm_forward_cpu);
  m.impl("fused_norm_backward", &fused_norm_backward_cpu);
}

}  // namespace cyclegan_ext
