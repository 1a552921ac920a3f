// Used by scripts/emulate_cuda_kernels.py (no GPU needed). Minimal host emulation of the CUDA execution model used by the kernels: blocks run one after
// another, the threads of a block run concurrently as std::threads, __syncthreads is a barrier,
// warp shuffles go through a per-warp buffer and barrier, __shared__ is a static local.
#pragma once
#include <barrier>
#include <stdexcept>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>
#include <algorithm>
#include <cmath>

struct emu_uint3 { unsigned x, y, z; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned long long a = 1, unsigned b = 1, unsigned c = 1) : x((unsigned)a), y(b), z(c) {}
};
typedef void* cudaStream_t;

namespace emu {
inline thread_local emu_uint3 t_threadIdx, t_blockIdx;
inline thread_local dim3 t_blockDim, t_gridDim;
struct Block {
  std::barrier<>* bar;
  std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
  std::vector<double> shfl;
  std::vector<unsigned char> smem;
};
inline Block* g_block = nullptr;
inline long g_max_blocks_run = 0;
inline void syncthreads() { g_block->bar->arrive_and_wait(); }
template <typename T>
T shfl_down(unsigned, T v, int offset) {
  const int lane = t_threadIdx.x & 31, warp = t_threadIdx.x >> 5;
  double* buf = &g_block->shfl[warp * 32];
  buf[lane] = (double)v;
  g_block->warp_bars[warp]->arrive_and_wait();
  T r = (lane + offset < 32) ? (T)buf[lane + offset] : v;
  g_block->warp_bars[warp]->arrive_and_wait();
  return r;
}
inline unsigned char* dynamic_smem() { return g_block->smem.data(); }
template <typename... KArgs, typename... Args>
void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t, void (*kernel)(KArgs...), Args... args) {
  if (block.x % 32 != 0 || block.x > 1024) throw std::runtime_error("bad block size");
  for (unsigned b = 0; b < grid.x; ++b) {
    Block blk;
    std::barrier<> bar(block.x);
    blk.bar = &bar;
    const int warps = block.x / 32;
    for (int w = 0; w < warps; ++w) blk.warp_bars.emplace_back(new std::barrier<>(32));
    blk.shfl.assign(warps * 32, 0.0);
    blk.smem.assign(smem + 16, 0xFF);  // garbage: NaN for float / double
    g_block = &blk;
    std::vector<std::thread> ts;
    ts.reserve(block.x);
    for (unsigned t = 0; t < block.x; ++t) {
      ts.emplace_back([=]() {
        t_threadIdx = {t, 0, 0};
        t_blockIdx = {b, 0, 0};
        t_blockDim = block;
        t_gridDim = grid;
        kernel(args...);
      });
    }
    for (auto& th : ts) th.join();
    g_block = nullptr;
  }
  g_max_blocks_run += grid.x;
}
}  // namespace emu

#define threadIdx emu::t_threadIdx
#define blockIdx emu::t_blockIdx
#define blockDim emu::t_blockDim
#define gridDim emu::t_gridDim
#define __syncthreads() emu::syncthreads()
#define __shfl_down_sync(m, v, o) emu::shfl_down(m, v, o)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)
#define C10_CUDA_KERNEL_LAUNCH_CHECK() ((void)0)
