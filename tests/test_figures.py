"""Figures a reader understands (issue 10): labelled axes with units or "(relative)", which
split/sim/frame is shown, every channel, integer epoch ticks, losses apart from parameter error."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.ticker import MaxNLocator

from hyco.evaluation import plot_losses, plot_predictions, plot_theta
from hyco.physics import make_problem
from hyco.registry import PROBLEMS

HISTORY = [{"epoch": e, "val_loss_synthetic": 0.5 / e, "val_loss_physical": 0.1 / e, "param_error": 2.0 / e**2,
            "theta": [0.02 / e, 3.0]} for e in range(1, 8)]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labelled(ax) -> bool:
    return bool(ax.get_xlabel() and ax.get_ylabel() and ax.get_title())


def _integer_epochs(ax) -> bool:
    locator = ax.xaxis.get_major_locator()
    return ax.get_xlabel() == "epoch" and isinstance(locator, MaxNLocator) and locator._integer


def test_losses_and_param_error_are_on_separate_axes():
    fig = plot_losses(HISTORY)
    loss_ax, param_ax = fig.axes
    assert {line.get_label() for line in loss_ax.get_lines()} == {"synthetic S", "physical P"}
    assert len(param_ax.get_lines()) == 1 and "θ*" in param_ax.get_ylabel()
    for ax in fig.axes:
        assert _labelled(ax) and "(relative)" in ax.get_ylabel() and ax.get_yscale() == "log"


def test_epoch_axes_have_integer_ticks():
    for fig in (plot_losses(HISTORY), plot_theta(HISTORY, [0.01, 3.0], ["nu", "c"])):
        assert fig.axes and all(_integer_epochs(ax) for ax in fig.axes if ax.get_xlabel() == "epoch")
        assert any(ax.get_xlabel() == "epoch" for ax in fig.axes)


def test_theta_is_relative_to_its_truth_with_the_truth_in_the_legend():
    ax = plot_theta(HISTORY, [0.01, 3.0], ["nu", "c"]).axes[0]
    assert _labelled(ax) and "(relative)" in ax.get_ylabel()
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"nu (θ* = 0.01)", "c (θ* = 3)"}
    assert lines["nu (θ* = 0.01)"].get_ydata()[0] == pytest.approx(2.0)
    assert list(lines["c (θ* = 3)"].get_ydata()) == pytest.approx([1.0] * len(HISTORY))


def _rollouts(problem, frames: int = 3) -> tuple[torch.Tensor, ...]:
    state = problem.sample_initial(1, torch.Generator().manual_seed(0))[0]
    truth = state.expand(frames, *state.shape).clone()
    return truth, truth + 0.1, truth * 0.9


def test_smoke_predictions_draw_every_channel_and_name_the_sim_and_frame():
    cls = PROBLEMS.get("smoke")
    problem = make_problem(cls.example_config())
    assert problem.channels == ("density", "v_x", "v_y")
    fig = plot_predictions(*_rollouts(problem), problem.channels, where="val sim 4", frame_dt=0.05,
                           spacing=[1 / 12, 1 / 8])
    panels = [ax for ax in fig.axes if ax.get_images()]  # not the colorbars
    assert len(panels) == 3 * 5
    for channel in problem.channels:  # one row of truth, S, P and both errors per channel
        assert sum(ax.get_title().endswith(f": {channel}") for ax in panels) == 5
    assert all(_labelled(ax) and "(domain units)" in ax.get_xlabel() for ax in panels)
    title = fig._suptitle.get_text()
    assert "val sim 4" in title and "frame 3 (t = 0.15)" in title
    assert {ax.get_ylabel() for ax in fig.axes if not ax.get_images()} >= {"density", "|error| of v_y"}


def test_1d_predictions_are_space_time_plots_in_time_units():
    problem = make_problem(PROBLEMS.get("burgers").example_config())
    fig = plot_predictions(*_rollouts(problem, frames=5), problem.channels, where="val sim 2", frame_dt=0.5)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 5 * len(problem.channels)
    assert all(ax.get_ylabel() == "t (time units)" and ax.get_xlabel() == "x (grid cells)" for ax in panels)
    assert panels[0].get_images()[0].get_extent()[2:] == pytest.approx([0.25, 2.75])
    assert "val sim 2, frames 1–5" in fig._suptitle.get_text()


def test_sweep_legends_show_the_sampled_values_in_short_form():
    from hyco.evaluation import short_label

    params = {"trainer_params.alpha": 0.4123, "trainer_params.alpha_physical": 0.6,
              "trainer_params.physical.max_iterations": 4, "trainer_params.interaction_region": "all", "model.width": 8}
    assert short_label(params) == "α_S=0.41 α_P=0.6 iters_P=4 region=all width=8"


def test_a_front_figure_joins_and_labels_the_front_and_stars_the_knee():
    from hyco.evaluation import plot_front

    points = [(1.0, 50.0, True), (2.0, 20.0, True), (30.0, 1.0, True), (5.0, 40.0, False), (float("nan"), 1.0, False)]
    front = {"c": (30.0, 1.0), "a": (1.0, 50.0), "b": (2.0, 20.0)}
    fig = plot_front(points, front, knee="b", xlabel="x (min)", ylabel="y (min)", title="front")
    ax = fig.axes[0]
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [1.0, 2.0, 30.0]  # joined in x order
    assert [t.get_text() for t in ax.texts] == ["c", "a", "b"]
    scatters = ax.collections
    assert len(scatters) == 4 + 3  # the NaN point is left out; the front drawn over the points
    assert [c.get_sizes()[0] for c in scatters[4:]] == [60, 60, 90]  # the knee larger (a star)
    assert ax.get_xscale() == ax.get_yscale() == "log"  # both span more than a decade
    fig = plot_front(points[:2], {}, knee=None, xlabel="x", ylabel="y", title="no front")
    assert not fig.axes[0].get_lines() and fig.axes[0].get_xscale() == "linear"
