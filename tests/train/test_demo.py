import os
import re

from helpers import run_train, train_records
from train.options import DEMO_DEFAULTS, parse


def test_demo_preset_applies_only_unset_options(tmp_path):
    from test_data import make_root
    opt = parse(["--demo", "--ngf", "24"])
    assert opt.ngf == 24 and opt.crop_size == DEMO_DEFAULTS["crop_size"] and opt.dataset == "synthetic"
    assert opt.name.startswith("demo_") and opt.netG == "adalin"
    assert parse([]).dataset == "synthetic" and parse(["--dataroot", make_root(tmp_path)]).dataset == "folder"


def test_demo_smoke(tmp_path, capsys):
    code = run_train("--demo", "--name", "demo", "--checkpoints_dir", tmp_path, "--max_steps", "3",
                     "--eval_freq", "3", "--display_freq", "3", "--print_freq", "1", "--no_progress")
    assert code == 0
    out = capsys.readouterr().out
    run = tmp_path / "demo"
    assert str(run / "index.html") in out and str(run / "samples") in out and "losses.png" in out
    rows = {m.group(1).strip(): (float(m.group(2)), float(m.group(3)))
            for m in re.finditer(r"^\s+(.+?)\s+([\d.]+)\s+([\d.]+)$", out, re.M)}
    assert {"G(A) vs true B", "identity A vs B", "F(B) vs true A", "identity B vs A"} <= set(rows)
    assert [r["step"] for r in train_records(run)] == [1, 2, 3]
    assert os.path.exists(run / "samples" / "step_0000003.png") and os.path.exists(run / "eval.png")
