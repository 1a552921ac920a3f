// Autograd of fused_norm_forward, in C++ so that no Python runs per call.
//
// Forward: the op below autograd; x, the parameters and the per-(n, c) statistics are saved.
// Backward: the fused backward op, then parameter gradients reduced to each parameter's own
// shape (a per-channel parameter sums its per-sample gradients over n). A second-order
// backward (create_graph=True, e.g. a WGAN-GP penalty) rebuilds the forward from ATen ops
// (`differentiable_forward`, the twin of cyclegan_ext.reference.adalin) and differentiates
// that, so the gradient is itself differentiable.
#include "norm_math.h"
#include "norm_ops.h"

#include <torch/autograd.h>
#include <torch/library.h>

namespace cyclegan_ext {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

OptionalTensor optional_of(const at::Tensor& t) { return t.defined() ? OptionalTensor(t) : OptionalTensor(); }

// A parameter broadcast against x (N, C, H, W).
at::Tensor as_4d(const at::Tensor& p) {
  if (p.dim() == 4) return p;
  return is_per_sample(p) ? p.unsqueeze(-1).unsqueeze(-1) : p.reshape({1, -1, 1, 1});
}

at::Tensor normalized(const at::Tensor& x, at::IntArrayRef dims, bool unbiased, double eps) {
  const at::Tensor mean = x.mean(dims, /*keepdim=*/true);
  const at::Tensor var = x.var(dims, unbiased, /*keepdim=*/true);
  return (x - mean) / (var + eps).sqrt();
}

at::Tensor differentiable_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                  const at::Tensor& rho, bool unbiased, double eps, int64_t activation,
                                  double negative_slope) {
  at::Tensor out = normalized(x, {2, 3}, unbiased, eps);
  if (rho.defined()) {
    const at::Tensor r = as_4d(rho);
    out = r * out + (1 - r) * normalized(x, {1, 2, 3}, unbiased, eps);
  }
  if (weight.defined()) out = out * as_4d(weight);
  if (bias.defined()) out = out + as_4d(bias);
  if (activation == kActRelu) return at::relu(out);
  if (activation == kActLeakyRelu) return at::leaky_relu(out, negative_slope);
  return out;
}

// A per-sample (N, C) gradient in the shape and dtype of its parameter.
at::Tensor reduce_to(const at::Tensor& grad_per_sample, const at::Tensor& param) {
  at::Tensor g = is_per_sample(param) ? grad_per_sample : grad_per_sample.sum(0).view(param.sizes());
  return g.scalar_type() == param.scalar_type() ? g : g.to(param.scalar_type());
}

struct Options {
  bool unbiased;
  double eps;
  int64_t activation;
  double negative_slope;
};

class FusedNormFunction : public torch::autograd::Function<FusedNormFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const OptionalTensor& weight,
                               const OptionalTensor& bias, const OptionalTensor& rho, bool unbiased, double eps,
                               int64_t activation, double negative_slope) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [y, mean_c, rstd_c, mean_l, rstd_l] =
        forward_op().call(x, weight, bias, rho, unbiased, eps, activation, negative_slope);
    ctx->set_materialize_grads(false);
    ctx->mark_non_differentiable({mean_c, rstd_c, mean_l, rstd_l});
    ctx->save_for_backward({x, weight.value_or(at::Tensor()), bias.value_or(at::Tensor()),
                            rho.value_or(at::Tensor()), mean_c, rstd_c, mean_l, rstd_l});
    ctx->saved_data["unbiased"] = unbiased;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["activation"] = activation;
    ctx->saved_data["negative_slope"] = negative_slope;
    return {y, mean_c, rstd_c, mean_l, rstd_l};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor& grad_y = grad_outputs[0];
    if (!grad_y.defined()) return variable_list(8);
    const variable_list saved = ctx->get_saved_variables();
    const Options o{ctx->saved_data["unbiased"].toBool(), ctx->saved_data["eps"].toDouble(),
                    ctx->saved_data["activation"].toInt(), ctx->saved_data["negative_slope"].toDouble()};
    variable_list grads = at::GradMode::is_enabled() ? second_order_ready_grads(grad_y, saved, o)
                                                     : fused_grads(grad_y, saved, o);
    grads.resize(8);  // no gradient for unbiased, eps, activation, negative_slope
    return grads;
  }

 private:
  static variable_list fused_grads(const at::Tensor& grad_y, const variable_list& saved, const Options& o) {
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2], &rho = saved[3];
    at::AutoDispatchBelowADInplaceOrView below_autograd;  // the backward op has no autograd of its own
    auto [grad_x, grad_w, grad_b, grad_rho] =
        backward_op().call(grad_y, x, optional_of(weight), optional_of(bias), optional_of(rho), saved[4], saved[5],
                           saved[6], saved[7], o.unbiased, o.activation, o.negative_slope);
    return {grad_x, weight.defined() ? reduce_to(grad_w, weight) : at::Tensor(),
            bias.defined() ? reduce_to(grad_b, bias) : at::Tensor(),
            rho.defined() ? reduce_to(grad_rho, rho) : at::Tensor()};
  }

  // create_graph=True: gradients through the ATen twin of the op, differentiable again.
  static variable_list second_order_ready_grads(const at::Tensor& grad_y, const variable_list& saved,
                                                const Options& o) {
    variable_list inputs;
    std::vector<size_t> slots;
    variable_list args(4);
    for (size_t i = 0; i < 4; ++i) {
      const at::Tensor& t = saved[i];
      if (!t.defined()) continue;
      args[i] = t.requires_grad() ? t : t.detach().requires_grad_(true);
      inputs.push_back(args[i]);
      slots.push_back(i);
    }
    const at::Tensor y =
        differentiable_forward(args[0], args[1], args[2], args[3], o.unbiased, o.eps, o.activation, o.negative_slope);
    const variable_list found = torch::autograd::grad({y}, inputs, {grad_y}, /*retain_graph=*/true,
                                                      /*create_graph=*/true, /*allow_unused=*/true);
    variable_list grads(4);
    for (size_t k = 0; k < slots.size(); ++k) grads[slots[k]] = found[k];
    return grads;
  }
};

bool any_requires_grad(const at::Tensor& x, const OptionalTensor& weight, const OptionalTensor& bias,
                       const OptionalTensor& rho) {
  return x.requires_grad() || (weight.has_value() && weight->requires_grad()) ||
         (bias.has_value() && bias->requires_grad()) || (rho.has_value() && rho->requires_grad());
}

ForwardResult fused_norm_forward_autograd(const at::Tensor& x, const OptionalTensor& weight,
                                          const OptionalTensor& bias, const OptionalTensor& rho, bool unbiased,
                                          double eps, int64_t activation, double negative_slope) {
  if (!at::GradMode::is_enabled() || !any_requires_grad(x, weight, bias, rho)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return forward_op().call(x, weight, bias, rho, unbiased, eps, activation, negative_slope);
  }
  variable_list out = FusedNormFunction::apply(x, weight, bias, rho, unbiased, eps, activation, negative_slope);
  return {out[0], out[1], out[2], out[3], out[4]};
}

}  // namespace

TORCH_LIBRARY_IMPL(cyclegan_ext, Autograd, m) {
  m.impl("fused_norm_forward", &fused_norm_forward_autograd);
}

}  // namespace cyclegan_ext
