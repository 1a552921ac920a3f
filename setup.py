"""Builds cyclegan_ext._C: the CPU kernels always, the CUDA kernels when torch has CUDA and a
CUDA toolkit is found (no GPU needs to be visible).

Environment knobs:
  CYCLEGAN_EXT_CUDA=0|1     force the CUDA kernels off / on (default: auto)
  TORCH_CUDA_ARCH_LIST      GPU architectures to compile for (default here: 9.0 when no GPU
                            is visible; CUDA 13 needs 7.5 or newer)
  CUDA_HOME                 the toolkit root (default: found from `nvcc --dryrun`)
  CYCLEGAN_EXT_CPU_ISA      avx2 | default: the CPU vector instructions the kernels use
                            (default: avx2 when this machine has AVX2 and FMA)
  CYCLEGAN_EXT_BUILD_TEMP   a folder for the object files that outlives the build (scripts/setup.sh:
                            build/cyclegan_ext); ninja then recompiles only the sources, headers
                            and flags that changed. Unset: setuptools' own (for pip -e, a fresh
                            temporary folder each time, so everything is compiled)
"""
import glob
import os
import platform
import re
import shutil
import subprocess
import sys

from setuptools import find_packages, setup

DEFAULT_ARCH_LIST = "9.0"


def find_cuda_home():
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    # The nvcc on PATH may be a wrapper outside the toolkit; nvcc itself reports its root.
    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"TOP=(\S+)", out.stdout + out.stderr)
    return os.path.realpath(match.group(1)) if match else None


def cpu_isa_flags():
    """Compiler flags for ATen's Vectorized<T>: AVX2 where the building machine has it.

    Without a CPU_CAPABILITY_* macro, at::vec falls back to scalar loops. The extension is
    compiled on the machine that runs it (pip install from source), so the build machine's
    instruction set is the right default; _C refuses to load on a CPU without it.
    """
    isa = os.environ.get("CYCLEGAN_EXT_CPU_ISA")
    if isa is None:
        isa = "avx2" if platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= cpu_flags() else "default"
    if isa == "avx2":
        # A namespace of our own for at::vec, so no symbol is shared with libtorch's copies.
        return ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=cyclegan_ext_avx2",
                "-DCYCLEGAN_EXT_NEEDS_AVX2"]
    if isa != "default":
        raise RuntimeError(f"CYCLEGAN_EXT_CPU_ISA must be 'avx2' or 'default', got {isa!r}")
    return []


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openmp_flags():
    """at::parallel_for is an inline OpenMP loop: without -fopenmp it silently runs on one thread.

    Linking with -fopenmp names libgomp.so.1, which resolves to the copy torch already loaded.
    """
    return ["-fopenmp"] if sys.platform.startswith("linux") else []


def want_cuda(torch, cuda_home):
    forced = os.environ.get("CYCLEGAN_EXT_CUDA")
    if forced == "0":
        return False
    available = torch.version.cuda is not None and cuda_home is not None
    if forced == "1" and not available:
        raise RuntimeError("CYCLEGAN_EXT_CUDA=1 but torch has no CUDA or no CUDA toolkit was found "
                           f"(torch.version.cuda={torch.version.cuda}, CUDA_HOME={cuda_home})")
    return available


def extension_modules():
    cuda_home = find_cuda_home()
    if cuda_home:
        os.environ["CUDA_HOME"] = cuda_home  # before cpp_extension reads it
    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    cxx_flags = ["-O3", "-fno-math-errno"] + cpu_isa_flags() + openmp_flags()  # torch picks the C++ standard
    print(f"cyclegan_ext: C++ flags {' '.join(cxx_flags)}")
    if not want_cuda(torch, cuda_home):
        print("cyclegan_ext: building the CPU kernels only")
        return [CppExtension("cyclegan_ext._C", sources, extra_compile_args={"cxx": cxx_flags},
                             extra_link_args=openmp_flags())], torch
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST
    print(f"cyclegan_ext: building CPU and CUDA kernels (CUDA_HOME={cuda_home}, "
          f"TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', 'auto')})")
    sources += sorted(glob.glob("csrc/cuda/*.cu")) + sorted(glob.glob("csrc/cuda/*.cpp"))
    # No --use_fast_math: it flushes denormals (rsqrt.approx.ftz), so a plane whose variance is
    # below ~1e-38 with eps 0 would give inf on the GPU and a finite value on the CPU. The
    # kernels are memory-bound; exact division and square roots cost nothing measurable.
    nvcc_flags = ["-O3", "-lineinfo"]
    ext = CUDAExtension("cyclegan_ext._C", sources,
                        extra_compile_args={"cxx": cxx_flags + ["-DCYCLEGAN_EXT_WITH_CUDA"],
                                            "nvcc": nvcc_flags + ["-DCYCLEGAN_EXT_WITH_CUDA"]},
                        extra_link_args=openmp_flags())
    return [ext], torch


def build_ext_command():
    """torch's BuildExtension, keeping its object files in CYCLEGAN_EXT_BUILD_TEMP when set."""
    from torch.utils.cpp_extension import BuildExtension

    class BuildExtensionInFolder(BuildExtension.with_options(no_python_abi_suffix=False)):
        def finalize_options(self):
            super().finalize_options()
            folder = os.environ.get("CYCLEGAN_EXT_BUILD_TEMP")
            if folder:  # pip install -e would otherwise compile in a new temporary folder every time
                self.build_temp = os.path.abspath(folder)
                print(f"cyclegan_ext: object files in {self.build_temp}")

    return BuildExtensionInFolder


def main():
    extensions, torch = extension_modules()  # sets CUDA_HOME before cpp_extension reads it

    torch_version = torch.__version__.split("+")[0]
    setup(
        name="cyclegan_ext",
        version="0.1.0",
        description="Fused AdaLIN / LIN / instance-norm kernels for CycleGAN-style generators",
        packages=find_packages(include=["cyclegan_ext", "cyclegan_ext.*"]),
        ext_modules=extensions,
        cmdclass={"build_ext": build_ext_command()},
        # The compiled kernels only load in the torch they were built against.
        install_requires=[f"torch=={torch_version}"],
        python_requires=">=3.9",
    )


main()
