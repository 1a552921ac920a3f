"""python -m train.evaluate end to end on tiny image folders, with a stand-in feature extractor.

The Inception weights cannot be downloaded here, so the whole command path (load checkpoint,
translate the test folders, features, FID / KID table, JSON) runs with TEST DOUBLE features:
`colour_thumbnail_features`, a few colour statistics, NOT Inception features. The expected
numbers are computed here independently: the images are resized and translated by this file,
and FID comes from torch-fidelity's implementation. The torch-fidelity adapter itself is run
with randomly initialised weights (the real file is not available either).
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import models
from fault_files import Evil
from train import evaluate
from train.evaluation import fid_kid
from helpers import REPO

SIZE = 16
WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_NAME


def colour_thumbnail_features(images):
    """TEST DOUBLE for the Inception features: 2x2 mean thumbnail + per-channel std (15 dims)."""
    x = images.double() / 255.0
    thumbnail = nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
    return torch.cat([thumbnail, x.flatten(2).std(dim=2)], dim=1).numpy()


def write_images(folder, count, tint, seed):
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = np.clip(rng.normal(128, 40, (20 + 4 * i, 24, 3)) + tint, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:02d}.png"))


@pytest.fixture
def dataroot(tmp_path):
    write_images(tmp_path / "data" / "testA", 6, np.array([60, 0, -60]), seed=1)
    write_images(tmp_path / "data" / "testB", 5, np.array([-60, 0, 60]), seed=2)
    return str(tmp_path / "data")


def tiny_payload(seed):
    torch.manual_seed(seed)
    return models.generator_payload(models.build_generator("adalin", ngf=4, n_blocks=1), "adalin")


@pytest.fixture
def training_checkpoint(tmp_path):
    path = str(tmp_path / "latest.pt")
    torch.save({"format": "cyclegan_ext.train", "generators": {"AtoB": tiny_payload(1), "BtoA": tiny_payload(2)},
                "opt": {"crop_size": SIZE}}, path)
    return path


def resized_uint8(folder):
    images = []
    for name in sorted(os.listdir(folder)):
        with Image.open(os.path.join(folder, name)) as img:
            array = np.asarray(img.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC))
        images.append(torch.from_numpy(array.transpose(2, 0, 1).copy()))
    return torch.stack(images)


def translated_uint8(checkpoint, direction, images):
    net = models.load_generator(checkpoint, direction=direction)
    with torch.no_grad():
        out = net(images.float() / 127.5 - 1)
    return ((out + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def fid_by_torch_fidelity(features_1, features_2):
    from torch_fidelity import metric_fid
    stats = [metric_fid.fid_features_to_statistics(torch.from_numpy(np.asarray(f, dtype=np.float64)))
             for f in (features_1, features_2)]
    return metric_fid.fid_statistics_to_metric(*stats, verbose=False)[metric_fid.KEY_METRIC_FID]


def run_main(*args, feature_extractor=colour_thumbnail_features):
    return evaluate.main([str(a) for a in args], feature_extractor=feature_extractor)


# --- the command end to end ------------------------------------------------------------------

def test_command_prints_and_writes_fid_kid_for_both_directions(dataroot, training_checkpoint, tmp_path, capsys):
    out = tmp_path / "results" / "eval.json"
    assert run_main("--checkpoint", training_checkpoint, "--dataroot", dataroot, "--json", out,
                    "--kid_subsets", 4, "--device", "cpu") == 0
    table = capsys.readouterr().out
    for label in ("G(testA) vs testB", "identity: testA vs testB", "F(testB) vs testA", "identity: testB vs testA"):
        assert label in table
    report = json.loads(out.read_text())
    assert report["size"] == SIZE  # the training crop size stored in the checkpoint
    rows = {(r["direction"], r["compared"]): r for r in report["results"]}
    assert len(rows) == 4

    real = {d: colour_thumbnail_features(resized_uint8(os.path.join(dataroot, f"test{d}"))) for d in "AB"}
    fake_b = colour_thumbnail_features(translated_uint8(training_checkpoint, "AtoB", resized_uint8(f"{dataroot}/testA")))
    fake_a = colour_thumbnail_features(translated_uint8(training_checkpoint, "BtoA", resized_uint8(f"{dataroot}/testB")))
    expected = {
        ("AtoB", "G(testA) vs testB"): fid_by_torch_fidelity(fake_b, real["B"]),
        ("AtoB", "identity: testA vs testB"): fid_by_torch_fidelity(real["A"], real["B"]),
        ("BtoA", "F(testB) vs testA"): fid_by_torch_fidelity(fake_a, real["A"]),
        ("BtoA", "identity: testB vs testA"): fid_by_torch_fidelity(real["B"], real["A"]),
    }
    for key, fid in expected.items():
        # same features to float32 rounding of the network (~1e-6 of a pixel step, far below the
        # 0.5 that rounding to uint8 would need to flip), then float64 statistics: 1e-9 relative
        assert rows[key]["fid"] == pytest.approx(fid, rel=1e-9, abs=1e-12), key
        assert np.isfinite(rows[key]["kid_x100_mean"]) and rows[key]["kid_x100_std"] >= 0
        assert rows[key]["kid_subset_size"] == 5  # capped at the smaller folder
    assert rows[("AtoB", "G(testA) vs testB")]["images"] == [6, 5]


def test_an_identity_translator_scores_exactly_the_identity_baseline(dataroot):
    paths = {d: sorted(os.path.join(dataroot, f"test{d}", n) for n in os.listdir(os.path.join(dataroot, f"test{d}")))
             for d in "AB"}
    rows = fid_kid.evaluate({"AtoB": nn.Identity(), "BtoA": nn.Identity()}, paths, SIZE, colour_thumbnail_features,
                             kid_subsets=3, kid_subset_size=4, log=lambda m: None)
    for translated, identity in (rows[0:2], rows[2:4]):
        assert "identity" in identity.compared and "identity" not in translated.compared
        assert (translated.fid, translated.kid_x100_mean, translated.kid_x100_std) == \
            (identity.fid, identity.kid_x100_mean, identity.kid_x100_std)
    assert rows[0].fid > 0.01  # the tinted folders do differ


def test_single_generator_files_need_a_direction(dataroot, tmp_path, capsys):
    path = str(tmp_path / "G_A.pt")
    torch.save(tiny_payload(3), path)
    assert run_main("--checkpoint", path, "--dataroot", dataroot, "--size", SIZE) == 2
    assert "single generator" in capsys.readouterr().err
    out = tmp_path / "one.json"
    assert run_main("--checkpoint", path, "--dataroot", dataroot, "--size", SIZE, "--direction", "AtoB",
                    "--json", out, "--kid_subsets", 2) == 0
    assert [r["compared"] for r in json.loads(out.read_text())["results"]] == \
        ["G(testA) vs testB", "identity: testA vs testB"]


def test_existing_json_is_kept_without_overwrite(dataroot, training_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    out.write_text("earlier results")
    assert run_main("--checkpoint", training_checkpoint, "--dataroot", dataroot, "--json", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "earlier results"
    assert run_main("--checkpoint", training_checkpoint, "--dataroot", dataroot, "--json", out, "--overwrite",
                    "--kid_subsets", 2) == 0
    assert len(json.loads(out.read_text())["results"]) == 4


@pytest.mark.parametrize("args, message", [
    (["--size", "10"], "--size must be a multiple of 4"),
    (["--kid_subsets", "0"], "--kid_subsets"),
])
def test_bad_options_give_one_line_errors(dataroot, training_checkpoint, capsys, args, message):
    assert run_main("--checkpoint", training_checkpoint, "--dataroot", dataroot, *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_folders_and_checkpoints_are_named(dataroot, training_checkpoint, tmp_path, capsys):
    assert run_main("--checkpoint", training_checkpoint, "--dataroot", tmp_path / "nowhere") == 2
    assert "testA" in capsys.readouterr().err
    assert run_main("--checkpoint", tmp_path / "missing.pt", "--dataroot", dataroot) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_a_folder_with_one_image_is_refused(training_checkpoint, tmp_path, capsys):
    write_images(tmp_path / "one" / "testA", 3, np.array([0, 0, 0]), seed=1)
    write_images(tmp_path / "one" / "testB", 1, np.array([0, 0, 0]), seed=2)
    assert run_main("--checkpoint", training_checkpoint, "--dataroot", tmp_path / "one") == 2
    err = capsys.readouterr().err
    assert "at least 2" in err and "testB" in err


# --- the Inception weights ------------------------------------------------------------------

def test_without_weights_the_command_names_the_file_and_where_to_get_it(dataroot, training_checkpoint, tmp_path):
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty_torch_home"), "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-m", "train.evaluate", "--checkpoint", training_checkpoint,
                             "--dataroot", dataroot], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=600)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert WEIGHTS_NAME in lines[0] and WEIGHTS_URL in lines[0] and "--inception_weights" in lines[0]


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """A weights file of the right layout with random values (the real one cannot be fetched)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe
    path = str(tmp_path_factory.mktemp("inception") / WEIGHTS_NAME)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        torch.manual_seed(0)
        model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(model.state_dict(), path)
    return path


def test_inception_adapter_gives_2048_features_per_image(random_inception_weights):
    from train.evaluation.inception import InceptionFeatures
    extract = InceptionFeatures(random_inception_weights)
    images = torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8)
    features = extract(images)
    assert features.shape == (2, 2048) and features.dtype == np.float64 and np.isfinite(features).all()
    scale = np.abs(features).max()
    assert np.abs(features[0] - features[1]).max() > 1e-3 * scale  # different images, different features
    # per image, not per batch: a batch of one gives the same features up to float32 summation
    # order (~ 50 layers * sqrt(fan-in ~ 2000) * 6e-8, far below 1e-3 of the scale)
    np.testing.assert_allclose(extract(images[1:]), features[1:], rtol=0, atol=1e-3 * scale)


def test_weights_files_are_read_weights_only(tmp_path):
    from train.evaluation.inception import InceptionFeatures, InceptionWeightsError
    marker = tmp_path / "code_ran"
    crafted = tmp_path / WEIGHTS_NAME
    torch.save({"Conv2d_1a_3x3.conv.weight": Evil(str(marker))}, crafted)
    with pytest.raises(InceptionWeightsError, match=str(crafted)):
        InceptionFeatures(str(crafted))
    assert not marker.exists()
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InceptionWeightsError, match="junk.pth' is not a PyTorch checkpoint"):
        InceptionFeatures(str(junk))
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ


def test_weights_file_of_another_kind_is_named_and_no_weights_only_false_advice(tmp_path):
    from train.evaluation.inception import InceptionFeatures, InceptionWeightsError
    png = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(png)
    with pytest.raises(InceptionWeightsError, match="photo.png' is not a PyTorch checkpoint: it is a PNG image") as info:
        InceptionFeatures(str(png))
    assert "weights_only" not in str(info.value)
    not_tensors = tmp_path / "list.pth"
    torch.save([1, 2], not_tensors)
    with pytest.raises(InceptionWeightsError, match="expected a state_dict of tensors"):
        InceptionFeatures(str(not_tensors))


def test_weights_with_nan_are_refused(random_inception_weights, tmp_path):
    from train.evaluation.inception import InceptionFeatures, InceptionWeightsError
    state = torch.load(random_inception_weights, weights_only=True)
    name = next(k for k, t in state.items() if t.is_floating_point() and t.numel() > 1)
    state[name].view(-1)[1] = float("nan")
    damaged = tmp_path / WEIGHTS_NAME
    torch.save(state, damaged)
    with pytest.raises(InceptionWeightsError, match=f"1 tensors hold NaN or inf \\(first: {re.escape(name)}\\)"):
        InceptionFeatures(str(damaged))


def test_command_runs_with_a_given_weights_file(training_checkpoint, random_inception_weights, tmp_path):
    dataroot = tmp_path / "small"  # two images per folder: Inception is slow on a CPU
    write_images(dataroot / "testA", 2, np.array([60, 0, -60]), seed=1)
    write_images(dataroot / "testB", 2, np.array([-60, 0, 60]), seed=2)
    out = tmp_path / "eval.json"
    assert evaluate.main(["--checkpoint", training_checkpoint, "--dataroot", str(dataroot), "--direction", "AtoB",
                          "--inception_weights", random_inception_weights, "--kid_subsets", "2",
                          "--device", "cpu", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert "inception" in report["features"] and len(report["results"]) == 2
