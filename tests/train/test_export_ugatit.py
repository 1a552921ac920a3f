"""python -m train.export --ugatit_params: U-GAT-IT's params file from a training checkpoint."""
import subprocess
import sys

import pytest
import torch

import models
from train.export import main
from helpers import REPO

NETWORKS = ["genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB"]


def save_training_checkpoint(path, discriminators=("GA", "GB", "LA", "LB")):
    """A training checkpoint with the entries export reads, as --model ugatit writes them."""
    gens = {k: models.UGATITGenerator(ngf=4, n_blocks=1, light=True, norm_impl="eager") for k in ("AtoB", "BtoA")}
    discs = {k: models.UGATITDiscriminator(3, ndf=4, n_layers=5 if k[0] == "G" else 3) for k in discriminators}
    torch.save({"format": "cyclegan_ext.train", "version": 1, "step": 2, "opt": {"model": "ugatit"},
                "generators": {k: models.generator_payload(g, "ugatit_light") for k, g in gens.items()},
                "discriminators": {k: d.state_dict() for k, d in discs.items()}}, path)
    return gens, discs


def test_writes_the_six_state_dicts(tmp_path, capsys):
    gens, discs = save_training_checkpoint(tmp_path / "latest.pt")
    out = tmp_path / "export" / "params.pt"
    assert main(["--checkpoint", str(tmp_path / "latest.pt"), "--ugatit_params", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    params = torch.load(out, weights_only=True)
    assert list(params) == NETWORKS
    expected = {"genA2B": gens["AtoB"], "genB2A": gens["BtoA"], **{f"dis{k}": d for k, d in discs.items()}}
    for name, net in expected.items():
        state = net.state_dict()
        assert list(params[name]) == list(state)
        assert all(torch.equal(params[name][k], v) for k, v in state.items()), name
    assert [p.name for p in out.parent.iterdir()] == ["params.pt"]  # no temporary file left


def test_refuses_to_overwrite_without_being_asked(tmp_path, capsys):
    save_training_checkpoint(tmp_path / "latest.pt")
    out = tmp_path / "params.pt"
    out.write_bytes(b"earlier results")
    args = ["--checkpoint", str(tmp_path / "latest.pt"), "--ugatit_params", str(out)]
    assert main(args) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"earlier results"
    assert main(args + ["--overwrite"]) == 0
    assert list(torch.load(out, weights_only=True)) == NETWORKS
    assert main(["--checkpoint", str(tmp_path / "latest.pt"), "--ugatit_params", str(tmp_path / "latest.pt"),
                 "--overwrite"]) == 2
    assert "is the checkpoint itself" in capsys.readouterr().err


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n"), "not a PyTorch checkpoint"),
    (lambda p: torch.save({"conv.weight": torch.zeros(1)}, p), "not a cyclegan_ext.train training checkpoint"),
    (lambda p: save_training_checkpoint(p, discriminators=("A", "B")), "not a U-GAT-IT training checkpoint"),
])
def test_bad_checkpoints_give_one_line_errors(tmp_path, make, message):
    checkpoint = tmp_path / "latest.pt"
    make(checkpoint)
    proc = subprocess.run([sys.executable, "-m", "train.export", "--checkpoint", str(checkpoint),
                           "--ugatit_params", str(tmp_path / "out.pt")], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "out.pt").exists()


def test_a_format_is_required():
    with pytest.raises(SystemExit):
        main(["--checkpoint", "x.pt"])
