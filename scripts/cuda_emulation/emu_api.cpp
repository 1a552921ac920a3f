// C API over the CUDA launchers (norm_forward.cu / norm_backward.cu) for the host emulation:
// plans as in norm_cuda.cpp (or small ones that force split reductions), NaN-filled workspace.
#include "emu_cuda.h"
#include "csrc/cuda/norm_cuda.h"
#include <c10/util/Half.h>
#include <c10/util/BFloat16.h>
#include <limits>
#include <stdexcept>

using namespace cyclegan_ext::cuda;

static Plan plan(bool reduction, int64_t N, int64_t C, int64_t M, bool cl, int vec, int sms, int small) {
  if (small) return make_plan(N, C, M, cl, vec, sms, 1, reduction ? kNoLimit : 2, reduction ? kMaxReduceSplits : kNoLimit);
  return reduction ? reduction_plan(N, C, M, cl, vec, sms) : apply_plan(N, C, M, cl, vec, sms);
}

template <typename acc_t>
ParamView<acc_t> pv(const void* w, int64_t wsn, int64_t wsc, const void* b, int64_t bsn, int64_t bsc, const void* r, int64_t rs) {
  return ParamView<acc_t>{(const acc_t*)w, wsn, wsc, (const acc_t*)b, bsn, bsc, (const acc_t*)r, rs};
}

template <typename scalar_t>
static void fwd(const void* x, void* y, ParamView<acc_type<scalar_t>> p, void* mc, void* rc, void* ml, void* rl,
                int64_t N, int64_t C, int64_t M, int cl, int unbiased, double eps, int64_t act, double slope,
                int sms, int vec, int small, int64_t* info) {
  using acc_t = acc_type<scalar_t>;
  ForwardArgs<scalar_t> a;
  a.x = (const scalar_t*)x; a.y = (scalar_t*)y; a.params = p;
  a.mean_c = (acc_t*)mc; a.rstd_c = (acc_t*)rc; a.mean_l = (acc_t*)ml; a.rstd_l = (acc_t*)rl;
  a.N = N; a.C = C; a.M = M; a.channels_last = cl; a.unbiased = unbiased; a.eps = (acc_t)eps;
  a.activation = act; a.negative_slope = (acc_t)slope;
  Plan r = plan(true, N, C, M, cl, vec, sms, small), ap = plan(false, N, C, M, cl, vec, sms, small);
  std::vector<acc_t> ws(workspace_elems(N, C, r), std::numeric_limits<acc_t>::quiet_NaN());
  launch_forward<scalar_t>(a, r, ap, ws.data(), nullptr);
  info[0] = r.splits; info[1] = r.chunk; info[2] = r.threads; info[3] = r.tx; info[4] = r.col_tiles;
  info[5] = ap.splits; info[6] = ap.chunk; info[7] = ap.threads; info[8] = ap.tx; info[9] = ap.col_tiles;
}

template <typename scalar_t>
static void bwd(const void* go, const void* x, void* gx, ParamView<acc_type<scalar_t>> p, const void* mc, const void* rc,
                const void* ml, const void* rl, void* gw, void* gb, void* gr, int64_t N, int64_t C, int64_t M, int cl,
                int unbiased, int64_t act, double slope, int sms, int vec, int small, int64_t* info) {
  using acc_t = acc_type<scalar_t>;
  BackwardArgs<scalar_t> a;
  a.grad_out = (const scalar_t*)go; a.x = (const scalar_t*)x; a.grad_x = (scalar_t*)gx; a.params = p;
  a.mean_c = (const acc_t*)mc; a.rstd_c = (const acc_t*)rc; a.mean_l = (const acc_t*)ml; a.rstd_l = (const acc_t*)rl;
  a.grad_weight = (acc_t*)gw; a.grad_bias = (acc_t*)gb; a.grad_rho = (acc_t*)gr;
  a.N = N; a.C = C; a.M = M; a.channels_last = cl; a.unbiased = unbiased; a.activation = act;
  a.negative_slope = (acc_t)slope;
  Plan r = plan(true, N, C, M, cl, vec, sms, small), ap = plan(false, N, C, M, cl, vec, sms, small);
  std::vector<acc_t> ws(workspace_elems(N, C, r), std::numeric_limits<acc_t>::quiet_NaN());
  launch_backward<scalar_t>(a, r, ap, ws.data(), nullptr);
  info[0] = r.splits; info[1] = r.chunk; info[2] = r.threads; info[3] = r.tx; info[4] = r.col_tiles;
  info[5] = ap.splits; info[6] = ap.chunk; info[7] = ap.threads; info[8] = ap.tx; info[9] = ap.col_tiles;
}

extern "C" int emu_forward(int dtype, const void* x, void* y, const void* w, int64_t wsn, int64_t wsc, const void* b,
                           int64_t bsn, int64_t bsc, const void* r, int64_t rs, void* mc, void* rc, void* ml, void* rl,
                           int64_t N, int64_t C, int64_t M, int cl, int unbiased, double eps, int64_t act, double slope,
                           int sms, int vec, int small, int64_t* info) {
  try {
    switch (dtype) {
      case 0: fwd<float>(x, y, pv<float>(w, wsn, wsc, b, bsn, bsc, r, rs), mc, rc, ml, rl, N, C, M, cl, unbiased, eps, act, slope, sms, vec, small, info); break;
      case 1: fwd<double>(x, y, pv<double>(w, wsn, wsc, b, bsn, bsc, r, rs), mc, rc, ml, rl, N, C, M, cl, unbiased, eps, act, slope, sms, vec, small, info); break;
      case 2: fwd<c10::Half>(x, y, pv<float>(w, wsn, wsc, b, bsn, bsc, r, rs), mc, rc, ml, rl, N, C, M, cl, unbiased, eps, act, slope, sms, vec, small, info); break;
      case 3: fwd<c10::BFloat16>(x, y, pv<float>(w, wsn, wsc, b, bsn, bsc, r, rs), mc, rc, ml, rl, N, C, M, cl, unbiased, eps, act, slope, sms, vec, small, info); break;
    }
  } catch (const std::exception& e) { fprintf(stderr, "emu_forward: %s\n", e.what()); return 1; }
  return 0;
}

extern "C" int emu_backward(int dtype, const void* go, const void* x, void* gx, const void* w, int64_t wsn, int64_t wsc,
                            const void* b, int64_t bsn, int64_t bsc, const void* r, int64_t rs, const void* mc,
                            const void* rc, const void* ml, const void* rl, void* gw, void* gb, void* gr, int64_t N,
                            int64_t C, int64_t M, int cl, int unbiased, int64_t act, double slope, int sms, int vec,
                            int small, int64_t* info) {
  try {
    switch (dtype) {
      case 0: bwd<float>(go, x, gx, pv<float>(w, wsn, wsc, b, bsn, bsc, r, rs), mc, rc, ml, rl, gw, gb, gr, N, C, M, cl, unbiased, act, slope, sms, vec, small, info); break;
      case 1: bwd<double>(go, x, gx, pv<double>(w, wsn, wsc, b, bsn, bsc, r, rs), mc, rc, ml, rl, gw, gb, gr, N, C, M, cl, unbiased, act, slope, sms, vec, small, info); break;
      case 2: bwd<c10::Half>(go, x, gx, pv<float>(w, wsn, wsc, b, bsn, bsc, r, rs), mc, rc, ml, rl, gw, gb, gr, N, C, M, cl, unbiased, act, slope, sms, vec, small, info); break;
      case 3: bwd<c10::BFloat16>(go, x, gx, pv<float>(w, wsn, wsc, b, bsn, bsc, r, rs), mc, rc, ml, rl, gw, gb, gr, N, C, M, cl, unbiased, act, slope, sms, vec, small, info); break;
    }
  } catch (const std::exception& e) { fprintf(stderr, "emu_backward: %s\n", e.what()); return 1; }
  return 0;
}
