"""Issue 21.14: the report's figures read at a glance. Short names (α_S, α_P, ...) everywhere; slice
labels apart; parallel axes named in full and no line white on white; a colour per trial, the best
trial and ASHA's rung marked, PBT exploits marked; objectives named in the importances; each error
panel of predictions.png on its own scale. Figures are built from sweep records and a real Optuna
study (no Ray: seconds), then checked on their matplotlib objects."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import optuna
import pytest
import torch
from matplotlib.colors import to_rgb
from sweep_util import write_space

from hyco.evaluation import plot_predictions, short_label
from hyco_ray.core import figures
from hyco_ray.core.space import load_space
from hyco_ray.core.sweep_dir import LINEAGE_FILE, Sweep, TrialRecord

KEYS = ("trainer_params.alpha", "trainer_params.alpha_physical", "trainer_params.physical.max_iterations",
        "trainer_params.interaction_region")
SPACE = {"trainer_params.alpha": {"type": "uniform", "low": 0.05, "high": 1.0},
         "trainer_params.alpha_physical": {"type": "uniform", "low": 0.8, "high": 1.0},
         "trainer_params.physical.max_iterations": {"type": "int", "low": 1, "high": 8},
         "trainer_params.interaction_region": {"type": "choice", "values": ["unobserved", "all"]}}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _sweep(tmp_path, n: int = 16, scheduler=None, objectives=None) -> Sweep:
    """``n`` trials of 4 epochs with deterministic curves: every third ASHA-stopped at the rung (epoch
    2), trial 4 diverged, the rest complete; trial 7 is the best (lowest val_loss)."""
    spec = load_space(write_space(tmp_path, epochs=4, space=SPACE, scheduler=scheduler or
                                  {"type": "asha", "grace_period": 2, "reduction_factor": 2}, objectives=objectives))
    trials = []
    for i in range(n):
        params = {"trainer_params.alpha": 0.05 + 0.9 * i / n, "trainer_params.alpha_physical": 0.8 + 0.2 * (i % 5) / 5,
                  "trainer_params.physical.max_iterations": 1 + i % 8,
                  "trainer_params.interaction_region": ["unobserved", "all"][i % 2]}
        level = 0.001 if i == 7 else 0.01 * (1 + i)
        epochs = 2 if i % 3 == 2 else 4
        history = [{"epoch": e, "val_loss": level * 2 / e, "val_loss_synthetic": level / e,
                    "val_loss_physical": 1 / (level * e)} for e in range(1, epochs + 1)]
        if i == 4:
            history[-1] = {"epoch": 4, "val_loss": math.inf, "training_error": "diverged"}
        path = tmp_path / f"trial_{i:02d}"
        path.mkdir()
        trials.append(TrialRecord(f"t{i:02d}", "TERMINATED", params, history, str(path), finished_at=float(i)))
    return Sweep(tmp_path, spec, trials)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_short_names_are_alpha_s_alpha_p_in_legends_and_summaries():
    params = {"trainer_params.alpha": 0.4123, "trainer_params.alpha_physical": 0.6,
              "trainer_params.physical.max_iterations": 4, "trainer_params.interaction_region": "all", "model.width": 8}
    assert short_label(params) == "α_S=0.41 α_P=0.6 iters_P=4 region=all width=8"
    # two keys with the same last component keep one more component each
    assert short_label({"a.lr": 0.1, "b.lr": 0.2}) == "a.lr=0.1 b.lr=0.2"


def test_curves_give_every_trial_its_own_colour_and_mark_the_best_trial_and_the_asha_rung(tmp_path):
    sweep = _sweep(tmp_path, n=16)
    ax = figures.plot_curves(sweep).axes[0]
    curves = [line for line in ax.get_lines() if line.get_label().startswith(("t", "★"))]
    assert len(curves) == 16
    styles = {(to_rgb(line.get_color()), line.get_marker()) for line in curves}
    assert len(styles) == 16  # matplotlib's default cycle repeats after 10
    assert len({to_rgb(line.get_color()) for line in curves}) == 16  # up to 20 trials: 20 colours
    best = sweep.best()
    assert best.trial_id == "t07"
    (thick,) = [line for line in curves if line.get_label().startswith("★ best, t07: α_S=")]
    assert thick.get_linewidth() > max(line.get_linewidth() for line in curves if line is not thick)
    assert [line for line in ax.get_lines() if line.get_marker() == "*"]  # the star at its last epoch
    labels = _legend(ax)
    assert sum(label.endswith("(ASHA-stopped)") for label in labels) == 5
    assert any(label.startswith("t04") and label.endswith("(diverged)") for label in labels)
    rungs = [line for line in ax.get_lines() if line.get_linestyle() == "--" and list(line.get_xdata()) == [2, 2]]
    assert len(rungs) == 1 and any(label.startswith("ASHA rung (after epoch 2)") for label in labels)
    assert ax.get_yscale() == "log"


def test_pbt_curves_mark_each_exploit_at_the_epoch_it_took_over(tmp_path):
    sweep = _sweep(tmp_path, n=4, scheduler={"type": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.25})
    took_over = sweep.trials[2]
    taken = [{"from_epoch": 1, "trained_by": "t01", "settings": {}, "exploit": False},
               {"from_epoch": 3, "trained_by": "t02", "settings": {}, "exploit": True}]
    (tmp_path / "trial_02" / LINEAGE_FILE).write_text(json.dumps(taken))
    ax = figures.plot_curves(sweep).axes[0]
    (cross,) = [line for line in ax.get_lines() if line.get_marker() == "X"]
    assert list(cross.get_xdata()) == [2] and list(cross.get_ydata()) == [took_over.history[1]["val_loss"]]
    assert any(label.startswith("X: PBT exploit") for label in _legend(ax))
    assert [t.get_text() for t in ax.texts] == ["t02 takes t01's"]


def test_slice_panels_are_named_short_and_their_labels_do_not_overprint(tmp_path):
    sweep = _sweep(tmp_path, n=8)
    fig = figures.plot_slice(sweep)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_xlabel() and ax.collections]
    assert [ax.get_xlabel() for ax in panels] == ["α_S", "α_P", "iters_P", "region"]
    fig.canvas.draw()
    boxes = [ax.xaxis.label.get_window_extent() for ax in panels]
    boxes += [t.get_window_extent() for ax in panels for t in ax.get_xticklabels()  # those drawn
              if t.get_text() and min(ax.get_xlim()) <= t.get_position()[0] <= max(ax.get_xlim())]
    for i, a in enumerate(boxes):  # Optuna's slice plot drew long key names over each other
        assert not any(a.overlaps(b) for b in boxes[i + 1:])
    stars = [c for ax in panels for c in ax.collections if c.get_sizes()[0] > 100]
    assert len(stars) == 4  # the best trial in every panel


def test_parallel_names_every_axis_in_full_and_draws_no_pale_line(tmp_path):
    sweep = _sweep(tmp_path, n=8)
    ax = figures.plot_parallel(sweep).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["α_S", "α_P", "iters_P", "region", "val_loss"]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 5]
    assert lines
    for line in lines:  # Optuna's Blues drew the worst trials white on the white background
        assert sum(to_rgb(line.get_color())) / 3 < 0.8
    (best,) = [line for line in lines if line.get_label().startswith("best trial t07")]
    assert best.get_linewidth() == max(line.get_linewidth() for line in lines)


def test_multi_objective_importances_name_the_objectives(tmp_path):
    objectives = {"val_loss_synthetic": "min", "val_loss_physical": "min"}
    sweep = _sweep(tmp_path, n=8, objectives=objectives)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for t in sweep.by_outcome("complete"):
        study.add_trial(optuna.trial.create_trial(
            params={k: t.params[k] for k in KEYS}, values=[t.value(k) for k in objectives],
            distributions={k: p.distribution() for k, p in sweep.spec.space.items()}))
    found = figures.importances(study, sweep)
    assert list(found) == list(objectives)
    ax = figures.plot_importances(found, sweep).axes[0]
    assert _legend(ax) == list(objectives)  # Optuna's said "Objective Value 0" and "Objective Value 1"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["α_S", "α_P", "iters_P", "region"]


def test_prediction_errors_each_have_their_own_colour_scale():
    truth = torch.linspace(0, 1, 5 * 16).reshape(5, 1, 16)
    synthetic, physical = truth + 0.1, truth + 1e-4  # P 1000x closer: a shared scale showed its panel black
    fig = plot_predictions(truth, synthetic, physical, ["u"], where="val sim 2")
    images = {ax.get_title(): ax.get_images()[0] for ax in fig.axes if ax.get_images()}
    s_error, p_error = images["|S − truth|: u"], images["|P − truth|: u"]
    assert s_error.get_clim()[1] == pytest.approx(0.1, rel=1e-3)
    assert p_error.get_clim()[1] == pytest.approx(1e-4, rel=1e-2)
    assert "each on its own colour scale" in fig._suptitle.get_text()
