"""--tensorboard and --wandb: what the event files / the offline W&B run hold is what
metrics.jsonl holds (every step, tag and value), plus the sample grids and the options; a resumed
run continues the same curves with no step twice; a missing package is one line."""
import glob
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import TINY, read_jsonl, run_train

LOGGED = ["--print_freq", "1", "--display_freq", "2", "--eval_freq", "2"]
TIMING = "sec_per_step"  # differs between two runs of the same step


def expected_scalars(run_dir):
    """{(tag, step): value} as the README documents the tags: each loss under the network it
    trains ("D/..." for the discriminators' losses, "G/..." for the generators'), the other
    numbers under the record's type, the epoch once per step (from the train record)."""
    expected = {}
    for r in read_jsonl(os.path.join(run_dir, "metrics.jsonl")):
        for key, value in r.items():
            if key in ("type", "step") or (key == "epoch" and r["type"] != "train"):
                continue
            if r["type"] == "train" and key not in ("epoch", "lr", TIMING):
                tag = ("D/" if key.startswith("D_") else "G/") + key
            else:
                tag = f"{r['type']}/{key}"
            expected[(tag, r["step"])] = value
    return expected


def sample_grid_sizes(run_dir):
    """{step: (width, height)} of the sample grids the run wrote."""
    sizes = {}
    for path in glob.glob(os.path.join(run_dir, "samples", "step_*.png")):
        with Image.open(path) as image:
            sizes[int(os.path.basename(path)[5:-4])] = image.size
    return sizes


# --- TensorBoard -------------------------------------------------------------------------------

def tensorboard_events(run_dir):
    """The run folder's events, every one of them: purge_orphaned_data=False keeps a step logged
    twice (TensorBoard would otherwise hide the earlier copy when it sees a step go back)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0, "images": 0, "tensors": 0},
                              purge_orphaned_data=False)
    events.Reload()
    return events


def logged_scalars(events):
    """{(tag, step): value}, asserting that no tag has a step twice or out of order."""
    found = {}
    for tag in events.Tags()["scalars"]:
        steps = [e.step for e in events.Scalars(tag)]
        assert steps == sorted(set(steps)), (tag, steps)
        found.update({(tag, e.step): e.value for e in events.Scalars(tag)})
    return found


def assert_scalars_match(found, expected, skip_values=()):
    assert set(found) == set(expected)
    for (tag, step), value in expected.items():
        if tag.rpartition("/")[2] in skip_values:
            continue
        # TensorBoard stores a scalar as float32: the logged float64 rounded to nearest, exactly.
        assert found[(tag, step)] == np.float32(value), (tag, step)


@pytest.fixture
def tensorboard():
    return pytest.importorskip("tensorboard")


def test_tensorboard_holds_every_logged_number_the_sample_grids_and_the_options(tmp_path, tensorboard):
    assert run_train("--name", "tb", "--checkpoints_dir", tmp_path, *TINY, *LOGGED, "--max_steps", "4",
                     "--tensorboard") == 0
    run_dir = str(tmp_path / "tb")
    events = tensorboard_events(run_dir)
    assert_scalars_match(logged_scalars(events), expected_scalars(run_dir))
    grids = sample_grid_sizes(run_dir)
    assert sorted(grids) == [2, 4]
    assert {e.step: (e.width, e.height) for e in events.Images("samples")} == grids
    tensors = events.Tags()["tensors"]
    assert "options/text_summary" in tensors
    options_text = events.Tensors("options/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| crop_size | 32 |" in options_text and "| tensorboard | True |" in options_text
    assert any(tag.startswith("_hparams_/") for tag in events.summary_metadata)


def test_a_resumed_run_continues_the_curves_without_logging_a_step_twice(tmp_path, tensorboard):
    args = ["--name", "tb", "--checkpoints_dir", tmp_path, *TINY, *LOGGED, "--tensorboard"]
    run_dir = tmp_path / "tb"
    assert run_train(*args, "--max_steps", "2") == 0
    shutil.copy(run_dir / "latest.pt", tmp_path / "step2.pt")
    assert run_train(*args, "--resume", "--max_steps", "4") == 0
    # As if the run had been killed after logging steps 3 and 4 but before saving them: the
    # next resume starts at step 2 again and replays steps 3 and 4.
    shutil.copy(tmp_path / "step2.pt", run_dir / "latest.pt")
    assert run_train(*args, "--resume", "--max_steps", "6") == 0
    assert len(glob.glob(str(run_dir / "events.out.tfevents.*"))) == 3  # one file per process, one folder
    events = tensorboard_events(str(run_dir))
    # Steps 3 and 4 keep the values the first pass logged; an exact resume computes the same
    # losses again, so they equal metrics.jsonl's (rewritten by the replay) but for the timing.
    assert_scalars_match(logged_scalars(events), expected_scalars(str(run_dir)), skip_values=(TIMING,))
    assert [e.step for e in events.Images("samples")] == [2, 4, 6]
    assert [e.step for e in events.Tensors("options/text_summary")] == [0]


def test_a_run_started_again_from_step_0_starts_its_curves_again(tmp_path, tensorboard):
    args = ["--name", "tb", "--checkpoints_dir", tmp_path, *TINY, *LOGGED, "--tensorboard", "--max_steps", "2"]
    assert run_train(*args) == 0
    os.unlink(tmp_path / "tb" / "latest.pt")  # as if killed before its first checkpoint
    assert run_train(*args, "--resume") == 0  # starts again from step 0, replacing its logs
    events = tensorboard_events(str(tmp_path / "tb"))
    assert_scalars_match(logged_scalars(events), expected_scalars(str(tmp_path / "tb")))
    assert [e.step for e in events.Tensors("options/text_summary")] == [0]


@pytest.mark.parametrize("flag, module", [("--tensorboard", "tensorboard"), ("--wandb", "wandb"),
                                          ("--use_wandb", "wandb")])
def test_a_missing_logging_package_is_one_line_naming_it(tmp_path, capsys, monkeypatch, flag, module):
    monkeypatch.setitem(__import__("sys").modules, module, None)  # `import module` now fails
    assert run_train("--name", "m", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "1", flag) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert f"needs the {module} package" in err and f"pip install {module}" in err
    assert not (tmp_path / "m").exists()  # refused before the run folder was made


# --- Weights & Biases ----------------------------------------------------------------------------

@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """wandb, offline and quiet, with every file it writes under tmp_path."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for variable, folder in (("WANDB_DIR", "dir"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"),
                             ("WANDB_DATA_DIR", "data"), ("WANDB_ARTIFACT_DIR", "artifacts")):
        monkeypatch.setenv(variable, str(tmp_path / "wandb_home" / folder))


def test_wandb_offline_run_holds_every_logged_number_and_a_resume_continues_it(tmp_path, wandb_offline):
    from wandb_records import history, run_config
    args = ["--name", "wb", "--checkpoints_dir", tmp_path / "runs", *TINY, *LOGGED, "--use_wandb"]
    run_dir = tmp_path / "runs" / "wb"
    assert run_train(*args, "--max_steps", "2") == 0
    assert run_train(*args, "--resume", "--max_steps", "4") == 0
    with open(run_dir / "wandb_run_id") as f:
        run_id = f.read()
    files = sorted(glob.glob(str(run_dir / "wandb" / "offline-run-*" / f"run-{run_id}.wandb")))
    assert len(files) == 2  # both processes logged to the same W&B run
    rows = [row for path in files for row in history(path)]
    steps = [row["_step"] for row in rows]
    assert steps == [1, 2, 3, 4]  # each step once
    logged = {(key, row["_step"]): value for row in rows for key, value in row.items()
              if not key.startswith(("_", "samples/"))}
    assert logged == expected_scalars(str(run_dir))  # JSON keeps a float64 exactly
    grids = sample_grid_sizes(str(run_dir))
    assert {row["_step"]: (row["samples/width"], row["samples/height"]) for row in rows
            if row.get("samples/_type") == "image-file"} == grids
    config = run_config(files[0])
    assert config["crop_size"] == 32 and config["wandb"] is True and config["name"] == "wb"
