"""python -m train.bench runs (a smoke test: tiny sizes, one repetition, no timing claims)."""
import json

import pytest

from train import bench


def test_quick_bench_runs_every_requested_build_and_writes_json(tmp_path, capsys):
    out = tmp_path / "e2e.json"
    bench.main(["--quick", "--builds", "fused,eager,free", "--warmup", "0", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["ngf"] == 8 and report["builds"] == ["fused", "eager", "free"]
    rows = report["results"]
    assert [(r["arch"], r["size"], r["mode"]) for r in rows] == [("resnet_6blocks", 32, "train"),
                                                                 ("resnet_6blocks", 32, "infer")]
    for r in rows:
        t = {b: r[f"{b}_s"] for b in ("fused", "eager", "free")}
        assert all(v > 0 for v in t.values())
        for b in ("fused", "eager"):
            assert r["norm_share"][b] == pytest.approx((t[b] - t["free"]) / t[b])
    assert rows[0]["saved_fused"] > 0 and rows[0]["saved_eager"] > 0
    assert "resnet_6blocks" in capsys.readouterr().out


def test_official_preset_and_explicit_options():
    args = bench.parse_args(["--config", "official"])
    assert (args.archs, args.ngf, args.ndf, args.batch_size, args.sizes) == (["resnet_9blocks"], 64, 64, 1, [128, 256])
    args = bench.parse_args(["--config", "official", "--sizes", "64"])
    assert args.sizes == [64] and args.archs == ["resnet_9blocks"]


@pytest.mark.parametrize("argv, message", [
    (["--builds", "fused,nope"], "unknown build 'nope'"),
    (["--archs", "unet"], "unknown arch 'unet'"),
    (["--sizes", "30"], "multiples of 4"),
    (["--modes", "fly"], "unknown mode 'fly'"),
])
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_count_writes_one_object_per_build_with_ratios_against_the_official_iteration(tmp_path, capsys):
    out = tmp_path / "count.json"
    bench.main(["--count", "--quick", "--sizes", "32,64", "--reps", "1", "--json", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [r["build"] for r in rows] == list(bench.COUNT_BUILDS) and rows[0]["build"] == "official"
    by_build = {r["build"]: r for r in rows}
    for r in rows:
        assert r["ops_per_iteration"] > 0 and r["host_ms"] > 0 and r["saved_mb"] == r["saved_mb_by_size"]["64"]
        assert r["ops_ratio"] == pytest.approx(r["ops_per_iteration"] / rows[0]["ops_per_iteration"])
        assert r["saved_ratio"] == pytest.approx(r["saved_mb"] / rows[0]["saved_mb"])
    # the same networks at twice the side keep about four times the bytes
    assert 3 < by_build["fused"]["saved_mb_by_size"]["64"] / by_build["fused"]["saved_mb_by_size"]["32"] < 5
    saving = by_build["fused+save_memory"]["saved_mb"]
    assert by_build["fused+save_memory+grad_checkpoint"]["saved_mb"] < saving < by_build["fused"]["saved_mb"]
    assert "fused+save_memory" in capsys.readouterr().out


def test_cut_recipes_run_beside_cycle_gan_with_cuts_own_iteration_as_reference(tmp_path):
    out = tmp_path / "cut.json"
    # adalin is CycleGAN's only: CUT's recipes train ResNet generators
    args = bench.parse_args(["--model", "cycle_gan,cut", "--archs", "resnet_6blocks,adalin"])
    assert [(a.model, arch) for a, arch in bench.model_archs(args)] == [
        ("cycle_gan", "resnet_6blocks"), ("cycle_gan", "adalin"), ("cut", "resnet_6blocks")]
    bench.main(["--quick", "--model", "cycle_gan,cut,fastcut", "--builds", "fused,official", "--modes", "train",
                "--warmup", "0", "--json", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [r["model"] for r in rows] == ["cycle_gan", "cut", "fastcut"]
    by_model = {r["model"]: r for r in rows}
    # CUT's reference runs the encoder four more times with gradients (two for FastCUT, without
    # the NCE identity), so it keeps more than our single encoder pass over fake_B and idt_B
    for model in ("cut", "fastcut"):
        assert by_model[model]["saved_official"] > by_model[model]["saved_fused"] > 0
    assert by_model["fastcut"]["saved_fused"] < by_model["cut"]["saved_fused"]  # half the images through G


def test_a_model_that_trains_none_of_the_archs_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(["--model", "cut", "--archs", "adalin"])
    assert exit_.value.code == 2 and "--model cut trains none of --archs adalin" in capsys.readouterr().err
