// Host side of the CUDA ops: argument checks and layouts (shared with the CPU backend through
// norm_ops.h), output allocation, launch plans, dtype dispatch, and the dispatcher registration.
// The kernels themselves live in norm_forward.cu / norm_backward.cu.
#include "../norm_ops.h"
#include "norm_cuda.h"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <atomic>
#include <cstdint>

namespace cyclegan_ext {
namespace {

int multiprocessor_count(c10::DeviceIndex device) {
  static std::atomic<int> cache[256];
  TORCH_CHECK(device >= 0 && device < 256, "fused_norm (CUDA): unexpected device index ", device);
  int count = cache[device].load(std::memory_order_relaxed);
  if (count == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    cache[device].store(count, std::memory_order_relaxed);
  }
  return count;
}

// A parameter in the accumulation dtype: the tensor itself when it already is (read with its
// strides by the kernels), else a converted copy. Undefined when the argument is None.
at::Tensor param_in(const OptionalTensor& t, at::ScalarType acc) {
  if (!t.has_value()) return at::Tensor();
  return t->scalar_type() == acc ? *t : t->to(acc);
}

template <typename acc_t>
cuda::ParamView<acc_t> param_view(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& rho) {
  const ParamLayout w = param_layout(weight.defined() ? OptionalTensor(weight) : OptionalTensor());
  const ParamLayout b = param_layout(bias.defined() ? OptionalTensor(bias) : OptionalTensor());
  const ParamLayout r = param_layout(rho.defined() ? OptionalTensor(rho) : OptionalTensor());
  cuda::ParamView<acc_t> v;
  v.weight = w.defined ? weight.const_data_ptr<acc_t>() : nullptr;
  v.weight_sn = w.stride_n;
  v.weight_sc = w.stride_c;
  v.bias = b.defined ? bias.const_data_ptr<acc_t>() : nullptr;
  v.bias_sn = b.stride_n;
  v.bias_sc = b.stride_c;
  v.rho = r.defined ? rho.const_data_ptr<acc_t>() : nullptr;
  v.rho_s = r.stride_c;
  return v;
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Elements per load: 16 bytes' worth when every tensor the passes stream through is 16-byte
// aligned and a vector never straddles a plane (NCHW) or a row (NHWC); else 1.
int vector_width(const at::Tensor& x, std::initializer_list<const at::Tensor*> others, int64_t C, int64_t M,
                 bool channels_last) {
  const int width = static_cast<int>(16 / x.element_size());
  if (width <= 1) return 1;
  const int64_t run = channels_last ? C : M;
  if (run % width != 0 || !aligned16(x.const_data_ptr())) return 1;
  for (const at::Tensor* t : others) {
    if (!aligned16(t->const_data_ptr())) return 1;
  }
  return width;
}

at::MemoryFormat kernel_memory_format(bool channels_last) {
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

ForwardResult fused_norm_forward_cuda(const at::Tensor& x_in, const OptionalTensor& weight,
                                      const OptionalTensor& bias, const OptionalTensor& rho, bool unbiased,
                                      double eps, int64_t activation, double negative_slope) {
  check_forward_inputs(x_in, weight, bias, rho, unbiased, eps, activation);
  TORCH_CHECK_VALUE(x_in.is_cuda(), "fused_norm (CUDA): expected x on a CUDA device, got ", x_in.device());
  if (x_in.numel() == 0) return empty_forward_result(x_in);
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = kernel_layout(x_in);
  const bool channels_last = is_channels_last_layout(x);
  const int64_t N = x.size(0), C = x.size(1), M = x.size(2) * x.size(3);
  const at::ScalarType acc = accumulation_dtype(x);
  const auto acc_options = x.options().dtype(acc);

  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(kernel_memory_format(channels_last)));
  at::Tensor mean_c = at::empty({N, C}, acc_options);
  at::Tensor rstd_c = at::empty({N, C}, acc_options);
  at::Tensor mean_l = at::empty({N}, acc_options);
  at::Tensor rstd_l = at::empty({N}, acc_options);
  const at::Tensor w = param_in(weight, acc);
  const at::Tensor b = param_in(bias, acc);
  const at::Tensor r = param_in(rho, acc);

  const int sms = multiprocessor_count(x.device().index());
  const int vec = vector_width(x, {&y}, C, M, channels_last);
  const cuda::Plan red = cuda::reduction_plan(N, C, M, channels_last, vec, sms);
  const cuda::Plan app = cuda::apply_plan(N, C, M, channels_last, vec, sms);
  at::Tensor workspace = at::empty({cuda::workspace_elems(N, C, red)}, acc_options);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fused_norm_forward_cuda", [&] {
    using acc_t = cuda::acc_type<scalar_t>;
    cuda::ForwardArgs<scalar_t> args;
    args.x = x.const_data_ptr<scalar_t>();
    args.y = y.mutable_data_ptr<scalar_t>();
    args.params = param_view<acc_t>(w, b, r);
    args.mean_c = mean_c.mutable_data_ptr<acc_t>();
    args.rstd_c = rstd_c.mutable_data_ptr<acc_t>();
    args.mean_l = mean_l.mutable_data_ptr<acc_t>();
    args.rstd_l = rstd_l.mutable_data_ptr<acc_t>();
    args.N = N;
    args.C = C;
    args.M = M;
    args.channels_last = channels_last;
    args.unbiased = unbiased;
    args.eps = static_cast<acc_t>(eps);
    args.activation = activation;
    args.negative_slope = static_cast<acc_t>(negative_slope);
    cuda::launch_forward<scalar_t>(args, red, app, workspace.mutable_data_ptr<acc_t>(), stream);
  });
  return {y, mean_c, rstd_c, mean_l, rstd_l};
}

BackwardResult fused_norm_backward_cuda(const at::Tensor& grad_out_in, const at::Tensor& x_in,
                                        const OptionalTensor& weight, const OptionalTensor& bias,
                                        const OptionalTensor& rho, const at::Tensor& mean_c_in,
                                        const at::Tensor& rstd_c_in, const at::Tensor& mean_l_in,
                                        const at::Tensor& rstd_l_in, bool unbiased, int64_t activation,
                                        double negative_slope) {
  check_forward_inputs(x_in, weight, bias, rho, unbiased, /*eps=*/0.0, activation);
  check_backward_inputs(grad_out_in, x_in, mean_c_in, rstd_c_in, mean_l_in, rstd_l_in);
  TORCH_CHECK_VALUE(x_in.is_cuda(), "fused_norm_backward (CUDA): expected x on a CUDA device, got ",
                    x_in.device());
  if (x_in.numel() == 0) return empty_backward_result(x_in);
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = kernel_layout(x_in);
  const bool channels_last = is_channels_last_layout(x);
  const at::Tensor grad_out = grad_out_in.contiguous(kernel_memory_format(channels_last));
  const int64_t N = x.size(0), C = x.size(1), M = x.size(2) * x.size(3);
  const at::ScalarType acc = accumulation_dtype(x);
  const auto acc_options = x.options().dtype(acc);
  const at::Tensor mean_c = mean_c_in.to(acc).contiguous();
  const at::Tensor rstd_c = rstd_c_in.to(acc).contiguous();
  const at::Tensor mean_l = mean_l_in.to(acc).contiguous();
  const at::Tensor rstd_l = rstd_l_in.to(acc).contiguous();
  TORCH_CHECK_VALUE(mean_c.device() == x.device() && rstd_c.device() == x.device() &&
                        mean_l.device() == x.device() && rstd_l.device() == x.device(),
                    "fused_norm_backward (CUDA): saved statistics are not on x's device");

  at::Tensor grad_x = at::empty(x.sizes(), x.options().memory_format(kernel_memory_format(channels_last)));
  at::Tensor grad_weight = at::empty({N, C}, acc_options);
  at::Tensor grad_bias = at::empty({N, C}, acc_options);
  at::Tensor grad_rho = at::empty({N, C}, acc_options);
  const at::Tensor w = param_in(weight, acc);
  const at::Tensor b = param_in(bias, acc);
  const at::Tensor r = param_in(rho, acc);

  const int sms = multiprocessor_count(x.device().index());
  const int vec = vector_width(x, {&grad_out, &grad_x}, C, M, channels_last);
  const cuda::Plan red = cuda::reduction_plan(N, C, M, channels_last, vec, sms);
  const cuda::Plan app = cuda::apply_plan(N, C, M, channels_last, vec, sms);
  at::Tensor workspace = at::empty({cuda::workspace_elems(N, C, red)}, acc_options);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fused_norm_backward_cuda", [&] {
    using acc_t = cuda::acc_type<scalar_t>;
    cuda::BackwardArgs<scalar_t> args;
    args.grad_out = grad_out.const_data_ptr<scalar_t>();
    args.x = x.const_data_ptr<scalar_t>();
    args.grad_x = grad_x.mutable_data_ptr<scalar_t>();
    args.params = param_view<acc_t>(w, b, r);
    args.mean_c = mean_c.const_data_ptr<acc_t>();
    args.rstd_c = rstd_c.const_data_ptr<acc_t>();
    args.mean_l = mean_l.const_data_ptr<acc_t>();
    args.rstd_l = rstd_l.const_data_ptr<acc_t>();
    args.grad_weight = grad_weight.mutable_data_ptr<acc_t>();
    args.grad_bias = grad_bias.mutable_data_ptr<acc_t>();
    args.grad_rho = grad_rho.mutable_data_ptr<acc_t>();
    args.N = N;
    args.C = C;
    args.M = M;
    args.channels_last = channels_last;
    args.unbiased = unbiased;
    args.activation = activation;
    args.negative_slope = static_cast<acc_t>(negative_slope);
    cuda::launch_backward<scalar_t>(args, red, app, workspace.mutable_data_ptr<acc_t>(), stream);
  });
  return {grad_x, grad_weight, grad_bias, grad_rho};
}

}  // namespace

TORCH_LIBRARY_IMPL(cyclegan_ext, CUDA, m) {
  m.impl("fused_norm_forward", &fused_norm_forward_cuda);
  m.impl("fused_norm_backward", &fused_norm_backward_cuda);
}

}  // namespace cyclegan_ext
