"""Pure helpers shared by the trainers: the losses of docs/architecture.md ("HYCO in one epoch") and observed-frame selection."""

from __future__ import annotations

import torch

from hyco.registry import METRICS


def masked_nmse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """sum(mask (pred - target)^2) / sum(mask target^2): scale-free, so L-BFGS steps are O(1).

    ``mask`` broadcasts against the trailing spatial axes (``[*S]``); None means all points.
    """
    err = (pred - target) ** 2
    ref = target**2
    if mask is not None:
        err = err * mask
        ref = ref * mask
    return err.sum() / ref.sum().clamp_min(1e-12)


@METRICS.register("relative_l2")
def relative_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over samples of ||pred - target|| / ||target|| (samples along the first axis).

    Non-finite predictions (a blown-up rollout) count as a large finite error, not a NaN.
    """
    pred = torch.nan_to_num(pred, nan=1e6, posinf=1e6, neginf=-1e6)
    diff = (pred - target).flatten(1).norm(dim=1)
    ref = target.flatten(1).norm(dim=1).clamp_min(1e-12)
    return (diff / ref).mean()


def select_observed(rollout: torch.Tensor, stride: int) -> torch.Tensor:
    """Frames of a ``[B, n*stride, ...]`` rollout that coincide with observed frames."""
    return rollout[:, stride - 1 :: stride]
