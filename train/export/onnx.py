"""ONNX export of a generator, checked in onnxruntime against PyTorch.

    python -m train.export --checkpoint CKPT --onnx OUT.onnx [--direction AtoB|BtoA]
        [--size N | --dynamic] [--overwrite]                       (the command: train/export/)

The fused cyclegan_ext layers are custom ops that ONNX has no operator for, so the exported
graph is that of the same network rebuilt with norm_impl="eager" (the pure-PyTorch reference
layers, same state_dict): instance norm becomes InstanceNormalization, AdaLIN / LIN become
ReduceMean / Sub / Mul / Sqrt / Div, U-GAT-IT's gamma/beta MLP becomes Gemm. The exporter is
torch.onnx's TorchScript one (dynamo=False): it needs nothing beyond torch and onnx, and exports
these networks in about a second, where the dynamo exporter needs onnxscript and takes several
times longer. Opset 17, standard operators only (checked).

Before the file is written, onnxruntime runs it on a random input and its output is compared
with PyTorch's, both the fused network (what train.translate runs) and the eager one that was
exported; a difference above the tolerance (default 1e-4, float32) means no file is written.
The batch size is always dynamic; --dynamic also makes height and width dynamic: any size of at
least 8, as the graph pads height and width by reflection (right and bottom) to the multiples of 4
the generators need and crops the output back, as train.translate does. U-GAT-IT's full
generator only runs at its img_size, so it is exported at that size. The model's metadata
(`input_size`) states the rule.
"""
from __future__ import annotations

import io
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import UserError

from ..atomic import atomic_write
from ..cli import MissingDependencyError
from ..options.checks import GENERATOR_MULTIPLE

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "translated"
DEFAULT_SIZE = 256
DEFAULT_TOLERANCE = 1e-4
STANDARD_DOMAINS = ("", "ai.onnx")
MIN_SIZE = 8  # two halvings must leave the residual blocks' reflection pads 2 pixels
INPUT_SIZE_KEY = "input_size"  # the metadata entry stating which sizes the graph takes


class OnnxExportError(UserError, ValueError):
    """The network cannot be exported as asked, or its export does not match PyTorch."""


@dataclass
class ExportReport:
    size: int
    dynamic: bool
    opset: int = OPSET
    checks: list = field(default_factory=list)  # [{"shape", "max_abs_diff": {"fused": .., "eager": ..}}]

    @property
    def worst(self):
        return max(d for check in self.checks for d in check["max_abs_diff"].values())


def _libraries():
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise MissingDependencyError(f"ONNX export needs onnx and onnxruntime ({error}): "
                                     "pip install onnx onnxruntime") from None
    return onnx, onnxruntime


def export_size(net, size, dynamic) -> int:
    """The example / check size: --size, else DEFAULT_SIZE; a fixed-size network's own size."""
    fixed = getattr(net, "fixed_input_size", None)
    if fixed is not None:
        if dynamic:
            raise OnnxExportError(f"this U-GAT-IT generator (light=False) only runs at {fixed}x{fixed}, so "
                                  "--dynamic cannot be honoured; export it without --dynamic")
        if size is not None and size != fixed:
            raise OnnxExportError(f"--size {size}: this U-GAT-IT generator (light=False) only runs at {fixed}x{fixed}")
        return fixed
    size = DEFAULT_SIZE if size is None else size
    if size < MIN_SIZE or size % GENERATOR_MULTIPLE:
        raise OnnxExportError(f"--size must be a multiple of {GENERATOR_MULTIPLE} and at least {MIN_SIZE}, got {size}")
    return size


class PaddedToMultiple(nn.Module):
    """`net` on any height and width: reflection-pads the right and bottom to multiples of
    GENERATOR_MULTIPLE, runs net, and crops its output back (traced, the pads follow the input)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        h, w = x.shape[-2], x.shape[-1]
        pad_h, pad_w = (-h) % GENERATOR_MULTIPLE, (-w) % GENERATOR_MULTIPLE
        return self.net(F.pad(x, (0, pad_w, 0, pad_h), mode="reflect"))[..., :h, :w]


def exported_network(net, dynamic):
    """What the graph computes: net itself at a fixed size, net padded and cropped when dynamic."""
    return PaddedToMultiple(net).eval() if dynamic else net


def input_size_rule(size, dynamic):
    """The metadata text saying which inputs the graph takes."""
    if dynamic:
        return (f"image (N, 3, H, W) in [-1, 1], any N, any H and W >= {MIN_SIZE}: the graph pads H and W by "
                f"reflection (right and bottom) to multiples of {GENERATOR_MULTIPLE} and crops the output back to "
                "H x W")
    return f"image (N, 3, {size}, {size}) in [-1, 1], any N; only {size}x{size}"


def check_shapes(size, dynamic):
    """Inputs the export is checked on: the export size, then batch 2 (for --dynamic at another,
    non-square size whose sides are not multiples of 4, so the padding in the graph is checked)."""
    other = (max(MIN_SIZE, size // 2 // 4 * 4) + 1, size + 6) if dynamic else (size, size)
    return [(1, 3, size, size), (2, 3, *other)]


def assert_exportable(net):
    fused = sorted({type(m).__name__ for m in net.modules() if type(m).__module__ == "cyclegan_ext.layers"})
    if fused:
        raise OnnxExportError(f"the network holds fused layers ({', '.join(fused)}) that ONNX has no operator "
                              "for; rebuild it with norm_impl='eager' (models.load_generator(..., norm_impl='eager'))")


def to_onnx(eager_net, size, dynamic):
    """The ONNX ModelProto of `eager_net` (batch dynamic; height and width too when `dynamic`,
    through PaddedToMultiple), with its input_size rule in the metadata."""
    onnx = _libraries()[0]
    assert_exportable(eager_net)
    eager_net = exported_network(eager_net.eval(), dynamic)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The exporter's notes: its deprecation, and the traced input-size checks (they hold for
        # every size the dynamic axes allow, multiples of 4).
        warnings.simplefilter("ignore")
        torch.onnx.export(eager_net.eval(), (torch.zeros(1, 3, size, size),), buffer, dynamo=False,
                          opset_version=OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(model, {INPUT_SIZE_KEY: input_size_rule(size, dynamic)})
    onnx.checker.check_model(model)
    non_standard = sorted({node.domain for node in model.graph.node} - set(STANDARD_DOMAINS)) + \
        [f"local function {f.name}" for f in model.functions]
    if non_standard:
        raise OnnxExportError(f"the exported graph uses non-standard operators or functions: {non_standard}")
    return model


def onnx_session(model_bytes, threads=None):
    onnxruntime = _libraries()[1]
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def max_abs_differences(session, references, shape, seed=0):
    """{name: max |onnxruntime - PyTorch|} on one random input in [-1, 1] of `shape`."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    (ours,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
    differences = {}
    with torch.no_grad():
        for name, net in references.items():
            differences[name] = float(np.abs(ours - net(x).float().numpy()).max())
    return differences


def checked_model(references, size, dynamic):
    """(serialized ONNX model of references["eager"], ExportReport comparing onnxruntime with
    every network in `references`, e.g. {"fused": .., "eager": ..}, on check_shapes)."""
    model_bytes = to_onnx(references["eager"], size, dynamic).SerializeToString()
    session = onnx_session(model_bytes)
    report = ExportReport(size, dynamic)
    computed = {name: exported_network(net, dynamic) for name, net in references.items()}
    for shape in check_shapes(size, dynamic):
        report.checks.append({"shape": list(shape), "max_abs_diff": max_abs_differences(session, computed, shape)})
    return model_bytes, report


def export_checked(references, out_path, size, dynamic, tolerance=DEFAULT_TOLERANCE) -> ExportReport:
    """checked_model, then write OUT atomically only if every difference is within `tolerance`."""
    model_bytes, report = checked_model(references, size, dynamic)
    if report.worst > tolerance:
        raise OnnxExportError(f"onnxruntime's output differs from PyTorch's by up to {report.worst:.2e} "
                              f"(> --tolerance {tolerance:g}); {out_path} was not written")
    atomic_write(out_path, lambda f: f.write(model_bytes), what="ONNX model")
    return report


def load_references(checkpoint, direction):
    """{"fused": net, "eager": net} from one checkpoint (a path or an already read dict); "fused"
    is left out where the compiled extension is not available."""
    import models
    references = {"eager": models.load_generator(checkpoint, direction=direction, norm_impl="eager")}
    try:
        references["fused"] = models.load_generator(checkpoint, direction=direction, norm_impl="fused")
    except ImportError as error:
        print(f"note: no fused comparison ({str(error).splitlines()[0]})", file=sys.stderr)
    return references


def export_from_checkpoint(checkpoint_path, out_path, direction="AtoB", size=None, dynamic=False,
                           tolerance=DEFAULT_TOLERANCE, log=print) -> ExportReport:
    """python -m train.export --onnx: the generator of `direction` in any checkpoint that
    models.load_generator reads, exported, checked and written atomically to out_path."""
    from models.checkpoint_file import read_checkpoint_file
    references = load_references(read_checkpoint_file(checkpoint_path), direction)
    report = export_checked(references, out_path, export_size(references["eager"], size, dynamic), dynamic, tolerance)
    log(f"wrote {out_path}: {direction} generator, " + format_report(report))
    return report


def format_report(report: ExportReport):
    lines = [f"opset {report.opset}, {'dynamic' if report.dynamic else 'fixed'} size "
             f"(checked at {report.size}x{report.size}{' and another size' if report.dynamic else ''}), dynamic batch"]
    for check in report.checks:
        diffs = ", ".join(f"{name} {d:.2e}" for name, d in sorted(check["max_abs_diff"].items()))
        lines.append(f"  input {tuple(check['shape'])}: max |onnxruntime - PyTorch| = {diffs}")
    return "\n".join(lines)
