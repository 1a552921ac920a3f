"""ONNX export (train.onnx_export, python -m train.export --onnx): every generator kind exports
with standard operators only and runs in onnxruntime like the fused PyTorch network.

The tests judge the written file themselves: they load it with onnx, list its operator
domains, run it in their own onnxruntime session and compare with the fused network.

Tolerance: the exported graph computes the same float32 function as the fused network with a
different operation order. For these tiny networks (ngf 4, a few layers, fan-in <= 7*7*16)
each layer's rounding is ~ sqrt(fan-in) * 6e-8 relative, and the instance / layer norms
rescale activations to unit size, so the end-to-end difference is ~1e-6 (tanh output in
[-1, 1]); TOL = 1e-4 is the command's own goal and leaves a 100x margin.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import models
from train import export, onnx_export
from train.export import onnx as onnx_lib

TOL = 1e-4
SIZE = 16
KINDS = {
    "adalin": dict(ngf=4, n_blocks=1),
    "resnet_6blocks": dict(ngf=4),
    "resnet_9blocks": dict(ngf=4),
    "ugatit_light": dict(ngf=4, n_blocks=1, img_size=SIZE),
    "ugatit": dict(ngf=4, n_blocks=1, img_size=SIZE),
}


def random_like_trained(net, seed):
    """Random weights everywhere, including the norms' rho / gamma / beta (not just their inits)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand(p.shape, generator=generator) * 0.6 - 0.3 + (0.5 if p.dim() == 1 else 0.0))
    return net


def payload(kind, seed):
    return models.generator_payload(random_like_trained(models.build_generator(kind, **KINDS[kind]), seed), kind)


def operator_domains(path):
    model = onnx.load(path)
    onnx.checker.check_model(model)
    return {node.domain for node in model.graph.node}, [f.name for f in model.functions]


def onnx_vs_fused(path, fused_net, shape, seed=1):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = fused_net(x).numpy()
    assert output.shape == expected.shape
    return float(np.abs(output - expected).max())


# loaded from bare state_dicts, as official CycleGAN (latest_net_G_A.pth) and U-GAT-IT (genA2B) save them
BARE_STATE_DICT = {"resnet_9blocks", "ugatit"}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_generator_kind_exports_and_matches_pytorch(kind, tmp_path):
    checkpoint = payload(kind, seed=3)
    if kind in BARE_STATE_DICT:
        checkpoint = checkpoint["state_dict"]
    fused = models.load_generator(checkpoint)
    dynamic = kind != "ugatit"  # the full U-GAT-IT generator only runs at img_size
    path = str(tmp_path / f"{kind}.onnx")
    report = onnx_lib.export_checked(onnx_lib.load_references(checkpoint, "AtoB"), path, SIZE, dynamic)
    assert report.worst <= TOL

    domains, functions = operator_domains(path)
    assert domains <= {"", "ai.onnx"} and not functions  # standard ONNX operators only
    shapes = [(1, 3, SIZE, SIZE), (3, 3, SIZE, SIZE)]  # batch is always dynamic
    if dynamic:
        shapes += [(2, 3, 24, 12), (1, 3, 8, 32)]
    for shape in shapes:
        assert onnx_vs_fused(path, fused, shape) <= TOL, shape


def test_the_full_ugatit_generator_has_a_fixed_size(tmp_path):
    checkpoint = payload("ugatit", seed=4)
    references = onnx_lib.load_references(checkpoint, "AtoB")
    with pytest.raises(onnx_lib.OnnxExportError, match="only runs at 16x16"):
        onnx_lib.export_size(references["eager"], None, dynamic=True)
    with pytest.raises(onnx_lib.OnnxExportError, match="only runs at 16x16"):
        onnx_lib.export_size(references["eager"], 32, dynamic=False)
    assert onnx_lib.export_size(references["eager"], None, dynamic=False) == SIZE


def test_fused_layers_are_refused_with_advice():
    with pytest.raises(onnx_lib.OnnxExportError, match="norm_impl='eager'"):
        onnx_lib.to_onnx(models.build_generator("adalin", ngf=4, n_blocks=1).eval(), SIZE, False)


def test_a_model_that_does_not_match_pytorch_is_not_written(tmp_path):
    references = onnx_lib.load_references(payload("adalin", seed=5), "AtoB")
    references["fused"] = models.load_generator(payload("adalin", seed=6))  # other weights
    path = tmp_path / "model.onnx"
    with pytest.raises(onnx_lib.OnnxExportError, match="was not written"):
        onnx_lib.export_checked(references, str(path), SIZE, dynamic=False)
    assert not path.exists() and list(tmp_path.iterdir()) == []  # no temporary file left either


# --- the command -----------------------------------------------------------------------------

@pytest.fixture
def training_checkpoint(tmp_path):
    path = tmp_path / "latest.pt"
    torch.save({"format": "cyclegan_ext.train",
                "generators": {"AtoB": payload("adalin", seed=7), "BtoA": payload("adalin", seed=8)}}, path)
    return path


def test_command_exports_the_chosen_direction_with_dynamic_sizes(training_checkpoint, tmp_path, capsys):
    out = tmp_path / "onnx" / "BtoA.onnx"
    assert export.main(["--checkpoint", str(training_checkpoint), "--onnx", str(out), "--direction", "BtoA",
                        "--dynamic"]) == 0
    printed = capsys.readouterr().out
    assert "max |onnxruntime - PyTorch|" in printed and str(out) in printed
    b_to_a = models.load_generator(str(training_checkpoint), direction="BtoA")
    a_to_b = models.load_generator(str(training_checkpoint), direction="AtoB")
    for shape in [(1, 3, 32, 32), (2, 3, 20, 44)]:
        assert onnx_vs_fused(str(out), b_to_a, shape) <= TOL
    assert onnx_vs_fused(str(out), a_to_b, (1, 3, 32, 32)) > 100 * TOL  # it is not the other generator


def padded_translation(net, x):
    """Written out by hand, as translate does: reflection-pad the right and bottom to multiples
    of 4, translate, crop back to the input's size."""
    h, w = x.shape[-2:]
    with torch.no_grad():
        return net(torch.nn.functional.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect"))[..., :h, :w].numpy()


@pytest.mark.parametrize("kind", ["adalin", "resnet_6blocks", "ugatit_light"])
def test_dynamic_model_takes_sizes_that_are_not_multiples_of_4(kind, tmp_path):
    out = tmp_path / f"{kind}.onnx"
    torch.save(payload(kind, seed=9), tmp_path / "g.pt")
    assert export.main(["--checkpoint", str(tmp_path / "g.pt"), "--onnx", str(out), "--dynamic"]) == 0
    fused = models.load_generator(str(tmp_path / "g.pt"))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 49, 50), (1, 3, 50, 49), (2, 3, 13, 9), (1, 3, 8, 31), (1, 3, 16, 16)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
        (output,) = session.run(None, {"image": x.numpy()})
        assert output.shape == shape                                          # cropped back
        assert np.abs(output - padded_translation(fused, x)).max() <= TOL, shape
    rule = {p.key: p.value for p in onnx.load(str(out)).metadata_props}[onnx_lib.INPUT_SIZE_KEY]
    assert "any H and W >= 8" in rule and "multiples of 4" in rule          # the rule, in the model


def test_fixed_size_model_states_its_size(training_checkpoint, tmp_path):
    out = tmp_path / "fixed.onnx"
    assert export.main(["--checkpoint", str(training_checkpoint), "--onnx", str(out), "--size", "24"]) == 0
    rule = {p.key: p.value for p in onnx.load(str(out)).metadata_props}[onnx_lib.INPUT_SIZE_KEY]
    assert "only 24x24" in rule


def test_command_keeps_an_existing_file_without_overwrite(training_checkpoint, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"earlier model")
    args = ["--checkpoint", str(training_checkpoint), "--onnx", str(out), "--size", str(SIZE)]
    assert export.main(args) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err
    assert out.read_bytes() == b"earlier model"
    assert export.main(args + ["--overwrite"]) == 0
    assert operator_domains(str(out))[0] <= {"", "ai.onnx"}


@pytest.mark.parametrize("make_args, message", [
    (lambda ckpt, tmp: ["--checkpoint", str(tmp / "missing.pt")], "missing.pt"),
    (lambda ckpt, tmp: ["--checkpoint", str(ckpt), "--size", "10"], "multiple of 4"),
])
def test_command_errors_are_one_line(training_checkpoint, tmp_path, capsys, make_args, message):
    assert export.main(make_args(training_checkpoint, tmp_path) + ["--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_bench_prints_pytorch_and_onnxruntime_side_by_side(capsys):
    threads = torch.get_num_threads()
    try:
        assert onnx_export.main(["--bench", "--netG", "adalin", "--ngf", "4", "--size", str(SIZE), "--runs", "1",
                                 "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    for label in ("PyTorch (eager)", "PyTorch (fused)", "onnxruntime", "median of 1 runs"):
        assert label in printed
