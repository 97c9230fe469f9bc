"""Rollout metrics on held-out sims and figures of a run."""

from __future__ import annotations

from hyco.evaluation.figures import (
    epoch_axis,
    plot_front,
    plot_losses,
    plot_predictions,
    plot_runs,
    plot_theta,
    save,
    short_label,
)

__all__ = ["epoch_axis", "plot_front", "plot_losses", "plot_predictions", "plot_runs", "plot_theta", "save", "short_label"]
