"""Figures of a run: both models' predictions against the truth; losses, parameter error and theta
over epochs. Each function returns its matplotlib ``Figure`` (tests inspect it); :func:`save`
writes and closes it.

Simulations are nondimensional: space is in the problem's domain units (its ``bounds``), time in
frames of ``frame_dt``; errors are relative (relative L2 over a rollout, ``|theta - theta*| / |theta*|``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def epoch_axis(ax, label: str = "epoch") -> None:
    """Label the x axis (epochs, or anything else counted), with integer ticks only."""
    ax.set_xlabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


#: short names of searched config keys in figures and summaries (docs/architecture.md: S the network,
#: P the physical model); other keys go by their last component, or the last two where that is ambiguous
SHORT = {"trainer_params.alpha": "α_S", "trainer_params.alpha_physical": "α_P",
         "trainer_params.physical.max_iterations": "iters_P", "trainer_params.physical.learning_rate": "lr_P",
         "trainer_params.synthetic.learning_rate": "lr_S", "trainer_params.synthetic.batch_size": "batch_S",
         "trainer_params.warmup_epochs": "warmup", "trainer_params.interleave_frequency": "every_P",
         "trainer_params.interaction_region": "region", "trainer_params.num_random_ics": "random ICs"}


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Each key's short name (:data:`SHORT`, else its last component; the last two where two keys share one)."""
    names = {k: SHORT.get(k, k.rsplit(".", 1)[-1]) for k in keys}
    clash = {n for n in names.values() if list(names.values()).count(n) > 1}
    return {k: ".".join(k.split(".")[-2:]) if n in clash and k not in SHORT else n for k, n in names.items()}


def short_label(params: Mapping[str, Any]) -> str:
    """Config values (key -> value, e.g. a sweep trial's) in short form for legends: ``α_S=0.41 α_P=0.6 iters_P=4``."""
    names = short_names(list(params))
    return " ".join(f"{names[k]}={v:.2g}" if isinstance(v, float) else f"{names[k]}={v}" for k, v in params.items())


def distinct_styles(n: int) -> list[tuple[Any, str]]:
    """``n`` (colour, marker) pairs, no two alike: tab10's colours up to 10 lines, tab20's up to 20,
    then tab20's again with another marker (matplotlib's default cycle repeats after 10)."""
    colours = plt.get_cmap("tab10" if n <= 10 else "tab20").colors
    markers = ".os^vD<>ph"
    return [(colours[i % len(colours)], markers[(i // len(colours)) % len(markers)]) for i in range(n)]


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_runs(runs: dict[str, tuple[Sequence[float], Sequence[float]]], *, ylabel: str, title: str, xlabel: str = "epoch",
              dotted: Collection[str] = (), step: bool = False, ax=None) -> Figure:
    """Curves of several runs (label -> (x, y)) on one axes: integer x ticks, log y where every value
    is positive, the legend below; ``dotted``: labels drawn dotted; ``step``: drawn as steps."""
    ax = ax or plt.subplots(figsize=(8, 5))[1]
    for (label, (x, y)), (colour, marker) in zip(runs.items(), distinct_styles(len(runs))):
        (ax.step if step else ax.plot)(x, y, ":" if label in dotted else "-", marker=marker, markersize=4, label=label,
                                       color=colour, **({"where": "post"} if step else {}))
    if all(v > 0 for line in ax.get_lines() for v in line.get_ydata() if math.isfinite(v)):
        ax.set_yscale("log")
    ax.set(ylabel=ylabel, title=title)
    epoch_axis(ax, xlabel)
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    return ax.figure


def plot_front(points: Sequence[tuple[float, float, bool]], front: dict[str, tuple[float, float]], *, knee: str | None,
               xlabel: str, ylabel: str, title: str) -> Figure:
    """Two objectives of many runs: ``points`` (x, y, filled: blue, else hollow grey; non-finite ones
    left out) and a Pareto ``front`` (label -> (x, y)) in red, joined in x order, each labelled, the
    ``knee`` starred. An axis is log where its finite values are positive and span over a decade."""
    fig, ax = plt.subplots(figsize=(9, 6.5))
    for x, y, filled in points:
        if math.isfinite(x) and math.isfinite(y):
            ax.scatter(x, y, s=30, facecolors="tab:blue" if filled else "none", edgecolors="tab:blue" if filled else "grey",
                       alpha=0.5, zorder=2)
    if front:
        ax.plot(*zip(*sorted(front.values(), key=lambda p: p[0])), "-", color="tab:red", zorder=1)
    for label, (x, y) in front.items():
        ax.scatter(x, y, s=90 if label == knee else 60, color="tab:red", marker="*" if label == knee else "o", zorder=3)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    scales = []
    for values in ([p[0] for p in points], [p[1] for p in points]):
        values = [v for v in values if math.isfinite(v)]
        scales.append("log" if values and min(values) > 0 and max(values) > 10 * min(values) else "linear")
    ax.set(xlabel=xlabel, ylabel=ylabel, xscale=scales[0], yscale=scales[1], title=title)
    fig.tight_layout()
    return fig


def plot_losses(history: list[dict]) -> Figure:
    """Two axes: the validation rollout errors of S and P, and P's parameter error (each log scale)."""
    epochs = [m["epoch"] for m in history]
    fig, (loss_ax, param_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((loss_ax, "val_loss_synthetic", "synthetic S"), (loss_ax, "val_loss_physical", "physical P"),
                           (param_ax, "param_error", "physical P")):
        values = [m.get(key, math.nan) for m in history]
        if any(math.isfinite(v) for v in values):  # a one-model trainer has no S (or no P) losses
            ax.semilogy(epochs, values, marker="o", label=label, color="C1" if key == "param_error" else None)
    loss_ax.set(ylabel="relative L2 error (relative)", title="validation rollouts (full fields, val sims)")
    loss_ax.legend()
    param_ax.set(ylabel="|θ − θ*| / |θ*| (relative)", title="parameter error of P")
    for ax in (loss_ax, param_ax):
        epoch_axis(ax)
    fig.tight_layout()
    return fig


def plot_theta(history: list[dict], truth: Sequence[float], labels: Sequence[str]) -> Figure:
    """Each parameter relative to its truth (θ / θ*, dashed line at 1), so parameters of different
    scales share one axis; a parameter whose truth is 0 is drawn as θ."""
    epochs = [m["epoch"] for m in history]
    thetas = torch.tensor([m["theta"] for m in history], dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, label in enumerate(labels):
        scale = truth[i] or 1.0
        ax.plot(epochs, thetas[:, i] / scale, marker="o", label=f"{label} (θ* = {truth[i]:.4g})")
    ax.axhline(1.0, color="k", linestyle="--", linewidth=1)
    ax.set(ylabel="θ / θ* (relative)", title="physical parameters of P (dashed: the truth)")
    epoch_axis(ax)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_predictions(
    truth: torch.Tensor, synthetic: torch.Tensor, physical: torch.Tensor, channels: Sequence[str], *,
    where: str = "val sim", frame_dt: float = 1.0, spacing: Sequence[float] | None = None,
) -> Figure:
    """One trajectory ``[T, C, *S]`` (frames 1..T) of truth, S and P: one row per channel (every
    channel), columns truth, S, P, |S - truth|, |P - truth| (each error on its own colour scale). 1D: space-time plots of all frames;
    2D: the last frame. ``where`` names the split and sim (``"val sim 4"``); ``spacing`` is the
    cell size per axis (x first) in domain units, None to label grid cells."""
    data = {"truth": truth, "synthetic S": synthetic, "physical P": physical}
    data = {k: v.detach().cpu().float() for k, v in data.items()}
    errors = {f"|{k[-1]} − truth|": (v - data["truth"]).abs() for k, v in list(data.items())[1:]}
    frames, one_d = data["truth"].shape[0], data["truth"].dim() == 3
    unit = "domain units" if spacing else "grid cells"
    spacing = list(spacing or [1.0] * (data["truth"].dim() - 2))
    fig, axes = plt.subplots(len(channels), 5, figsize=(19, 3.4 * len(channels)), squeeze=False)
    shown = f"frames 1–{frames}" if one_d else f"frame {frames} (t = {frames * frame_dt:.3g})"
    fig.suptitle(f"{where}, {shown}: truth, both models' rollouts from frame 0, and their errors (each on its own colour scale)")
    for c, (name, row) in enumerate(zip(channels, axes)):
        lo, hi = float(data["truth"][:, c].min()), float(data["truth"][:, c].max())
        panels = [(k, v, lo, hi, "RdBu_r", name) for k, v in data.items()]
        # each error on its own scale: a shared one blacked out the smaller (often P's, 1000x smaller)
        panels += [(k, v, 0.0, float(v[:, c].max() if one_d else v[-1, c].max()) or 1.0, "magma", f"|error| of {name}")
                   for k, v in errors.items()]
        for ax, (title, values, vmin, vmax, cmap, bar) in zip(row, panels):
            values = values[:, c]
            width = values.shape[-1] * spacing[0]
            if one_d:  # [T, X]: space-time
                extent = (0, width, frame_dt / 2, (frames + 0.5) * frame_dt)
                image = ax.imshow(values, aspect="auto", origin="lower", extent=extent, vmin=vmin, vmax=vmax, cmap=cmap)
                ax.set_ylabel("t (time units)")
            else:  # [T, Y, X]: the last frame
                extent = (0, width, 0, values.shape[-2] * spacing[1])
                image = ax.imshow(values[-1], origin="lower", extent=extent, vmin=vmin, vmax=vmax, cmap=cmap)
                ax.set_ylabel(f"y ({unit})")
            ax.set_xlabel(f"x ({unit})")
            ax.set_title(f"{title}: {name}")
            fig.colorbar(image, ax=ax, shrink=0.8, label=bar)
    fig.tight_layout()
    return fig
