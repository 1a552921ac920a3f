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
    # the fake (Meta) kernels come from Python; nothing composite in Python
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "Meta")
    assert not torch._C._dispatch_has_kernel_for_dispatch_key(op, "CompositeImplicitAutograd")


def test_cuda_kernels_flag_is_consistent():
    assert cyclegan_ext.has_cuda_kernels() == torch._C._dispatch_has_kernel_for_dispatch_key(OPS[0], "CUDA")


def test_autograd_is_registered_in_cpp():
    """The forward op's autograd is a C++ kernel for the Autograd key (no Python per call)."""
    assert torch._C._dispatch_has_kernel_for_dispatch_key(OPS[0], "Autograd")
    assert "autograd.cpp" in torch._C._dispatch_dump(OPS[0])


def _python_calls_during(fn):
    """Names (file:function) of the Python functions that run inside fn()."""
    calls = []

    def profile(frame, event, _arg):
        if event == "call":
            calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize("layer", ["adalin", "lin", "instance", "instance_affine_relu"])
def test_forward_and_backward_run_no_python_of_ours_beyond_the_layer_call(layer, monkeypatch):
    """Forward: the layer's forward plus one lookup of the op, then C++. Backward: no Python of
    this package at all, and not torch.library's Python autograd either. The pure-PyTorch
    reference is sabotaged to prove the math is not done in Python."""
    from cyclegan_ext import FusedAdaLIN, FusedInstanceNorm2d, FusedLIN, reference

    def boom(*args, **kwargs):
        raise AssertionError("the Python reference was called on the hot path")

    monkeypatch.setattr(reference, "adalin", boom)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    gamma, beta = torch.randn(2, 4, requires_grad=True), torch.randn(2, 4, requires_grad=True)
    module, call = {
        "adalin": (FusedAdaLIN(4), lambda m: m(x, gamma, beta)),
        "lin": (FusedLIN(4, activation="relu"), lambda m: m(x)),
        "instance": (FusedInstanceNorm2d(4), lambda m: m(x)),
        "instance_affine_relu": (FusedInstanceNorm2d(4, affine=True, activation="relu"), lambda m: m(x)),
    }[layer]
    outputs = []
    forward_calls = _python_calls_during(lambda: outputs.append(call(module)))
    ours = [c for c in forward_calls if PACKAGE_DIR.as_posix() in c]
    assert sorted(c.rsplit(":", 1)[1] for c in ours) == ["forward", "forward_y"], ours
    grad = torch.randn_like(x)
    backward_calls = _python_calls_during(lambda: torch.autograd.backward(outputs[0], grad))
    assert not [c for c in backward_calls if PACKAGE_DIR.as_posix() in c or "/torch/_library/" in c]
    assert x.grad is not None and all(p.grad is not None for p in module.parameters())


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
