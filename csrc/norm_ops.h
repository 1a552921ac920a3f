// Declarations shared by the op schema (ops.cpp), the autograd glue (autograd.cpp), the CPU
// kernels and the CUDA kernels.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Optional.h>
#include <tuple>

namespace cyclegan_ext {

using ForwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using BackwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using OptionalTensor = c10::optional<at::Tensor>;

// The two ops, as typed dispatcher handles (looked up once): calls through them go through
// the dispatcher (autograd, device, fake/meta kernels) without boxing the arguments.
using ForwardSignature = ForwardResult(const at::Tensor&, const OptionalTensor&, const OptionalTensor&,
                                       const OptionalTensor&, bool, double, int64_t, double);
using BackwardSignature = BackwardResult(const at::Tensor&, const at::Tensor&, const OptionalTensor&,
                                         const OptionalTensor&, const OptionalTensor&, const at::Tensor&,
                                         const at::Tensor&, const at::Tensor&, const at::Tensor&, bool, int64_t,
                                         double);
using ForwardOp = c10::TypedOperatorHandle<ForwardSignature>;
using BackwardOp = c10::TypedOperatorHandle<BackwardSignature>;
const ForwardOp& forward_op();
const BackwardOp& backward_op();

// Checks shared by every backend; throw c10::Error (ValueError/TypeError in Python)
// naming the argument.
void check_forward_inputs(const at::Tensor& x, const OptionalTensor& weight, const OptionalTensor& bias,
                          const OptionalTensor& rho, bool unbiased, double eps, int64_t activation);
void check_backward_inputs(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& mean_c,
                           const at::Tensor& rstd_c, const at::Tensor& mean_l, const at::Tensor& rstd_l);

// Where the kernels read gamma(n, c) of a (checked) weight, bias or rho argument:
// element [n * stride_n + c * stride_c]. Absent (None) parameters take their default value
// (weight 1, bias 0, rho 1 = instance norm); per-channel ones ((C,) or (1, C, 1, 1)) have
// stride_n 0; per-sample ones are (N, C).
struct ParamLayout {
  bool defined;
  int64_t stride_n;
  int64_t stride_c;
};
ParamLayout param_layout(const OptionalTensor& p);
bool is_per_sample(const at::Tensor& p);  // (N, C) rather than per channel

// The memory layout the kernels run in: x itself when it is dense NCHW or channels_last,
// otherwise one contiguous copy.
at::Tensor kernel_layout(const at::Tensor& x);
bool is_channels_last_layout(const at::Tensor& x);  // for a tensor returned by kernel_layout

// The dtype of the statistics, the parameter gradients and the kernels' arithmetic: float64
// for float64 x, float32 otherwise (half-precision x computes in float32).
at::ScalarType accumulation_dtype(const at::Tensor& x);

// Results for an input with no elements (as nn.InstanceNorm2d: an empty output; statistics
// of empty planes are NaN, parameter gradients zero).
ForwardResult empty_forward_result(const at::Tensor& x);
BackwardResult empty_backward_result(const at::Tensor& x);

ForwardResult fused_norm_forward_cpu(const at::Tensor& x, const OptionalTensor& weight, const OptionalTensor& bias,
                                     const OptionalTensor& rho, bool unbiased, double eps, int64_t activation,
                                     double negative_slope);
BackwardResult fused_norm_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x, const OptionalTensor& weight,
                                       const OptionalTensor& bias, const OptionalTensor& rho,
                                       const at::Tensor& mean_c, const at::Tensor& rstd_c, const at::Tensor& mean_l,
                                       const at::Tensor& rstd_l, bool unbiased, int64_t activation,
                                       double negative_slope);

}  // namespace cyclegan_ext
