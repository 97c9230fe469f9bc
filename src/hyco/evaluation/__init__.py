"""Rollout metrics on held-out sims and figures of a run."""

from __future__ import annotations

from hyco.evaluation.figures import plot_history, plot_predictions

__all__ = ["plot_history", "plot_predictions"]
