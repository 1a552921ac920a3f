"""The loss plot is readable whatever the recipe: every loss in one panel, no curve flattened by
another of a different scale in its panel (U-GAT-IT's weighted totals, ~1000x its terms, have
panels of their own), legends inside their panels; U-GAT-IT's progress bar shows its totals."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import run_train  # noqa: E402
from train.recipes import RECIPES, get_recipe  # noqa: E402
from train.recipes.ugatit import UGATIT  # noqa: E402
from train.run import report  # noqa: E402

# U-GAT-IT's sums (train/recipes/ugatit/losses.py, UGATIT.train): the rest are single terms.
UGATIT_TOTALS = {"D_loss_A", "D_loss_B", "Discriminator_loss", "G_loss_A", "G_loss_B", "Generator_loss"}
ADV, CYCLE, IDENTITY, CAM = 1.0, 10.0, 10.0, 1000.0  # U-GAT-IT's default loss weights
# Of the y span of its panel, the least a curve's own range may cover to be seen as a curve
# (at 4 in of panel height, 5% is 0.2 in: a flattened curve is a line at well under 1%).
READABLE_FRACTION = 0.05


def ugatit_records(steps=40, seed=0):
    """Train records with terms in the ranges U-GAT-IT logs and the totals its formulas give."""
    rng = np.random.default_rng(seed)
    records = []
    for step in range(1, steps + 1):
        r = {"type": "train", "step": step}
        for name in UGATIT.loss_names:
            if name.startswith("D_ad"):
                r[name] = rng.uniform(0.1, 0.6)
            elif name.startswith("G_ad"):
                r[name] = rng.uniform(0.3, 1.0)
            elif name.startswith(("G_recon", "G_identity")):
                r[name] = rng.uniform(0.05, 0.5)
            elif name.startswith("G_cam"):
                r[name] = rng.uniform(0.05, 1.4)
        for d in "AB":
            r[f"D_loss_{d}"] = ADV * sum(r[f"D_ad{k}_loss_{s}{d}"] for s in "GL" for k in ("", "_cam"))
            r[f"G_loss_{d}"] = (ADV * sum(r[f"G_ad{k}_loss_{s}{d}"] for s in "GL" for k in ("", "_cam"))
                                + CYCLE * r[f"G_recon_loss_{d}"] + IDENTITY * r[f"G_identity_loss_{d}"]
                                + CAM * r[f"G_cam_loss_{d}"])
        r["Discriminator_loss"] = r["D_loss_A"] + r["D_loss_B"]
        r["Generator_loss"] = r["G_loss_A"] + r["G_loss_B"]
        records.append(r)
    return records


@pytest.mark.parametrize("model", list(RECIPES))
def test_every_loss_is_in_exactly_one_panel(model):
    recipe = get_recipe(model)
    drawn = [name for panel in recipe.plot_panels() for name in panel.names]
    assert sorted(drawn) == sorted(recipe.loss_names)


def test_ugatit_loss_plot_keeps_totals_apart_every_curve_visible_and_legends_inside():
    fig, axes = report.loss_figure(plt, ugatit_records(), UGATIT.plot_panels())
    report.decorate_axes(axes)
    fig.tight_layout()
    fig.canvas.draw()
    drawn = []
    for ax in axes:
        names = [line.get_label() for line in ax.get_lines()]
        drawn += names
        assert set(names) <= UGATIT_TOTALS or not set(names) & UGATIT_TOTALS, (ax.get_title(), names)
        low, high = ax.get_ylim()
        for line in ax.get_lines():
            values = line.get_ydata()
            assert values.max() - values.min() >= READABLE_FRACTION * (high - low), (ax.get_title(), line.get_label())
        legend, panel = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert (panel.x0 <= legend.x0 and legend.x1 <= panel.x1 and panel.y0 <= legend.y0
                and legend.y1 <= panel.y1), ax.get_title()
    plt.close(fig)
    assert sorted(drawn) == sorted(UGATIT.loss_names)


@pytest.mark.parametrize("model, shown, hidden", [
    ("ugatit", ("Discriminator_loss", "Generator_loss"), ("D_ad_loss_GA", "G_cam_loss_A", "G_loss_A")),
    ("cycle_gan", tuple(get_recipe("cycle_gan").loss_names), ()),
])
def test_progress_bar_shows_ugatit_totals_and_every_cycle_gan_loss(tmp_path, capsys, model, shown, hidden):
    from test_ugatit_recipe import TINY as UGATIT_TINY
    from helpers import TINY
    args = [a for a in (UGATIT_TINY if model == "ugatit" else TINY) if a != "--no_progress"]
    assert run_train("--name", "p", "--checkpoints_dir", tmp_path, *args, "--max_steps", "2", "--print_freq", "1",
                     "--display_freq", "100", "--eval_freq", "100") == 0
    bar = capsys.readouterr().err.split("\r")[-1]  # tqdm redraws its line; the last is the final state
    assert all(f" {name} " in bar for name in shown), bar
    assert not any(f" {name} " in bar for name in hidden), bar
