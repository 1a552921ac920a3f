"""The extension is a real compiled module with C++ kernels behind the dispatcher, and
cyclegan_ext refuses to import (with build instructions) when the compiled module is missing."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cyclegan_ext
import cyclegan_ext._C

PACKAGE_DIR = Path(cyclegan_ext.__file__).resolve().parent
OPS = ["cyclegan_ext::fused_norm_forward", "cyclegan_ext::fused_norm_backward"]


def test_compiled_module_is_a_shared_library():
    path = Path(cyclegan_ext._C.__file__)
    assert path.suffix in (".so", ".pyd"), path
    assert path.resolve().parent == PACKAGE_DIR
    with open(path, "rb") as f:
        magic = f.read(4)
    assert magic in (b"\x7fELF", b"MZ\x90\x00") or magic[:2] == b"MZ", magic


@pytest.mark.parametrize("op", OPS)
def test_ops_have_compiled_cpu_kernels(op):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CPU")
    dump = torch._C._dispatch_dump(op)
    cpu_lines = [line for line in dump.splitlines() if line.startswith("CPU:")]
    assert len(cpu_lines) == 1, dump
    assert ".cpp" in cpu_lines[0] and "[ boxed unboxed ]" in cpu_lines[0], cpu_lines[0]
    # fake (Meta) and autograd come from Python, as DESIGN.md says; nothing composite in Python
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "Meta")
    assert not torch._C._dispatch_has_kernel_for_dispatch_key(op, "CompositeImplicitAutograd")


def test_cuda_kernels_flag_is_consistent():
    assert cyclegan_ext.has_cuda_kernels() == torch._C._dispatch_has_kernel_for_dispatch_key(OPS[0], "CUDA")


def test_first_order_paths_do_not_run_python_math(monkeypatch):
    """Forward and the ordinary backward run the C++ kernels: with the pure-PyTorch reference
    (the only Python implementation of the math) sabotaged, they still work."""
    from cyclegan_ext import FusedAdaLIN, FusedInstanceNorm2d, FusedLIN, reference

    def boom(*args, **kwargs):
        raise AssertionError("the Python reference was called on the hot path")

    monkeypatch.setattr(reference, "adalin", boom)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    ada, lin, inorm = FusedAdaLIN(4), FusedLIN(4, activation="relu"), FusedInstanceNorm2d(4, affine=True)
    y = ada(x, torch.randn(2, 4), torch.randn(2, 4)) + lin(x) + inorm(x)
    y.sum().backward()
    assert x.grad is not None and ada.rho.grad is not None and lin.gamma.grad is not None
    # ... and create_graph=True, which does use it, fails loudly rather than silently
    x2 = torch.randn(2, 4, 6, 6, requires_grad=True)
    with pytest.raises(AssertionError, match="hot path"):
        torch.autograd.grad(inorm(x2).pow(2).sum(), x2, create_graph=True)


def test_version_and_public_api():
    assert isinstance(cyclegan_ext.__version__, str)
    for name in ("FusedAdaLIN", "FusedLIN", "FusedInstanceNorm2d", "fused_norm", "reference"):
        assert hasattr(cyclegan_ext, name), name


def test_import_without_compiled_module_fails_loudly(tmp_path):
    """A copy of the package's .py files without _C*.so must not import (no Python fall-back),
    and the ImportError must say how to build the extension."""
    copy = tmp_path / "cyclegan_ext"
    copy.mkdir()
    for py in PACKAGE_DIR.glob("*.py"):
        shutil.copy(py, copy / py.name)
    assert not list(copy.glob("_C*"))
    code = (
        "import sys\n"
        # An editable install (pip install -e) adds a meta-path finder that would find the
        # repository's _C*.so for any `cyclegan_ext.*` name: take it out to see the copy alone.
        "sys.meta_path = [f for f in sys.meta_path\n"
        "                 if '__editable__' not in getattr(f, '__module__', '')]\n"
        "try:\n"
        "    import cyclegan_ext\n"
        "except ImportError as e:\n"
        "    print('MESSAGE', str(e))\n"
        "    sys.exit(0)\n"
        "except BaseException as e:\n"
        "    print('WRONG-EXCEPTION', type(e).__name__, e); sys.exit(3)\n"
        "print('IMPORTED', cyclegan_ext.__file__); sys.exit(2)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "MESSAGE" in out
    message = out.split("MESSAGE", 1)[1]
    assert "cyclegan_ext._C" in message or "compiled" in message, message
    assert "pip install" in message, message


def test_import_copy_sanity_check(tmp_path):
    """Guards the test above: the same copy *with* the .so imports fine, so the failure above
    comes from the missing compiled module, not from the copying or the environment."""
    copy = tmp_path / "cyclegan_ext"
    copy.mkdir()
    for f in list(PACKAGE_DIR.glob("*.py")) + list(PACKAGE_DIR.glob("_C*.so")):
        shutil.copy(f, copy / f.name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path)
    code = ("import sys\n"
            "sys.meta_path = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
            "import cyclegan_ext, torch\n"
            "torch.ops.cyclegan_ext.fused_norm_forward\n"
            "print(cyclegan_ext.__file__)\n"
            "print(cyclegan_ext._C.__file__)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.split()
    assert len(lines) == 2 and all(line.startswith(str(tmp_path)) for line in lines), proc.stdout
