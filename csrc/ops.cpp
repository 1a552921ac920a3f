// Op schemas of the cyclegan_ext library, their typed handles, and the checks every backend shares.
#include "norm_ops.h"
#include "norm_math.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <limits>

namespace cyclegan_ext {

namespace {
bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

bool is_per_channel_shape(const at::Tensor& p, int64_t C) {
  return p.sizes().equals({C}) || p.sizes().equals({1, C, 1, 1});
}

void check_param(const OptionalTensor& maybe_p, const char* name, const at::Tensor& x, bool per_sample_allowed) {
  if (!maybe_p.has_value()) return;
  const at::Tensor& p = *maybe_p;
  TORCH_CHECK_VALUE(p.device() == x.device(), "fused_norm: ", name, " is on ", p.device(),
                    " but x is on ", x.device(), "; move them to the same device");
  TORCH_CHECK_TYPE(p.scalar_type() == x.scalar_type() ||
                       (p.scalar_type() == at::kFloat &&
                        (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16)),
                   "fused_norm: ", name, " has dtype ", p.scalar_type(), " but x has dtype ",
                   x.scalar_type(), "; expected the same dtype (or float32 for half-precision x)");
  const int64_t N = x.size(0), C = x.size(1);
  const bool ok = is_per_channel_shape(p, C) || (per_sample_allowed && p.sizes().equals({N, C}));
  TORCH_CHECK_VALUE(ok, "fused_norm: expected ", name, " of shape (C,), (1, C, 1, 1)",
                    per_sample_allowed ? " or (N, C)" : "", " with N = ", N, ", C = ", C, ", got ", p.sizes());
}
}  // namespace

void check_forward_inputs(const at::Tensor& x, const OptionalTensor& weight, const OptionalTensor& bias,
                          const OptionalTensor& rho, bool unbiased, double eps, int64_t activation) {
  TORCH_CHECK_VALUE(x.dim() == 4, "fused_norm: expected x of shape (N, C, H, W), got ", x.sizes());
  TORCH_CHECK_TYPE(is_float_type(x.scalar_type()), "fused_norm: expected x to be a floating point tensor, got ",
                   x.scalar_type());
  TORCH_CHECK_VALUE(!unbiased || x.size(2) * x.size(3) != 1,
                    "fused_norm: unbiased variance needs H*W > 1, got x of shape ", x.sizes());
  TORCH_CHECK_VALUE(eps >= 0, "fused_norm: eps must be >= 0, got ", eps);
  TORCH_CHECK_VALUE(activation >= kActNone && activation <= kActLeakyRelu,
                    "fused_norm: unknown activation code ", activation);
  check_param(weight, "weight", x, /*per_sample_allowed=*/true);
  check_param(bias, "bias", x, /*per_sample_allowed=*/true);
  check_param(rho, "rho", x, /*per_sample_allowed=*/false);
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

bool is_per_sample(const at::Tensor& p) { return p.dim() == 2; }

ParamLayout param_layout(const OptionalTensor& p) {
  if (!p.has_value()) return {false, 0, 0};
  if (is_per_sample(*p)) return {true, p->stride(0), p->stride(1)};
  return {true, 0, p->stride(p->dim() == 1 ? 0 : 1)};
}

at::Tensor kernel_layout(const at::Tensor& x) {
  if (x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast)) return x;
  return x.contiguous();
}

bool is_channels_last_layout(const at::Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

at::ScalarType accumulation_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

ForwardResult empty_forward_result(const at::Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1);
  const auto stats = x.options().dtype(accumulation_dtype(x));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  return {at::empty_like(x), at::full({N, C}, nan, stats), at::full({N, C}, nan, stats), at::full({N}, nan, stats),
          at::full({N}, nan, stats)};
}

BackwardResult empty_backward_result(const at::Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1);
  const auto grads = x.options().dtype(accumulation_dtype(x));
  return {at::empty_like(x), at::zeros({N, C}, grads), at::zeros({N, C}, grads), at::zeros({N, C}, grads)};
}

const ForwardOp& forward_op() {
  static const ForwardOp op =
      c10::Dispatcher::singleton().findSchemaOrThrow("cyclegan_ext::fused_norm_forward", "").typed<ForwardSignature>();
  return op;
}

const BackwardOp& backward_op() {
  static const BackwardOp op =
      c10::Dispatcher::singleton().findSchemaOrThrow("cyclegan_ext::fused_norm_backward", "").typed<BackwardSignature>();
  return op;
}

TORCH_LIBRARY(cyclegan_ext, m) {
  // y, mean_c (N, C), rstd_c (N, C), mean_l (N,), rstd_l (N,). Statistics are in the
  // accumulation dtype (float32, or float64 for float64 x). weight / bias: None (1 / 0),
  // per channel ((C,) or (1, C, 1, 1)) or per sample ((N, C)); rho: None (instance norm) or
  // per channel.
  m.def(
      "fused_norm_forward(Tensor x, Tensor? weight, Tensor? bias, Tensor? rho, bool unbiased, "
      "float eps, int activation, float negative_slope) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // grad_x (like x), and per-sample grad_weight, grad_bias, grad_rho, each (N, C) in the
  // accumulation dtype (grad_rho is zero when rho is None); the autograd glue sums them over n
  // for per-channel parameters.
  m.def(
      "fused_norm_backward(Tensor grad_out, Tensor x, Tensor? weight, Tensor? bias, Tensor? rho, "
      "Tensor mean_c, Tensor rstd_c, Tensor mean_l, Tensor rstd_l, bool unbiased, int activation, "
      "float negative_slope) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(cyclegan_ext, CPU, m) {
  m.impl("fused_norm_forward", &fused_norm_forward_cpu);
  m.impl("fused_norm_backward", &fused_norm_backward_cpu);
}

}  // namespace cyclegan_ext
