// Declarations shared by the op schema (ops.cpp), the CPU kernels and the CUDA kernels.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Optional.h>
#include <tuple>

namespace cyclegan_ext {

using ForwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using BackwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Checks shared by every backend; throw c10::Error (ValueError/TypeError in Python)
// naming the argument.
void check_forward_inputs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          const c10::optional<at::Tensor>& rho, bool unbiased, double eps,
                          int64_t activation);
void check_backward_inputs(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& mean_c,
                           const at::Tensor& rstd_c, const at::Tensor& mean_l, const at::Tensor& rstd_l);

// The memory layout the kernels run in: x itself when it is dense NCHW or channels_last,
// otherwise one contiguous copy.
at::Tensor kernel_layout(const at::Tensor& x);
bool is_channels_last_layout(const at::Tensor& x);  // for a tensor returned by kernel_layout

// The per-channel parameters as dense (N, C) / (C,) tensors in the accumulation dtype;
// rho == nullopt means instance norm (rho = 1).
at::Tensor as_param_matrix(const at::Tensor& t, at::ScalarType acc);
at::Tensor rho_vector(const c10::optional<at::Tensor>& rho, int64_t C, at::ScalarType acc,
                      const at::Device& device);

ForwardResult fused_norm_forward_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                     const c10::optional<at::Tensor>& rho, bool unbiased, double eps,
                                     int64_t activation, double negative_slope);
BackwardResult fused_norm_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                       const at::Tensor& weight, const at::Tensor& bias,
                                       const c10::optional<at::Tensor>& rho, const at::Tensor& mean_c,
                                       const at::Tensor& rstd_c, const at::Tensor& mean_l,
                                       const at::Tensor& rstd_l, bool unbiased, int64_t activation,
                                       double negative_slope);

}  // namespace cyclegan_ext
