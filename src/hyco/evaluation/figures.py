"""Figures of a run: predictions of both models against the truth, theta and losses over epochs."""

from __future__ import annotations

import math as pymath
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def plot_history(history: list[dict], truth: list[float], labels: list[str], out_dir: Path) -> list[Path]:
    """``losses.png`` (val losses of S and P, param error) and ``theta.png`` (theta vs theta*)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = [m["epoch"] for m in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("val_loss_synthetic", "val loss S"), ("val_loss_physical", "val loss P"),
                       ("param_error", "param error of P")):
        values = [m[key] for m in history]
        if any(pymath.isfinite(v) for v in values):
            ax.semilogy(epochs, values, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_title("losses over epochs")
    ax.legend()
    fig.tight_layout()
    paths = [out_dir / "losses.png"]
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    thetas = torch.tensor([m["theta"] for m in history])
    for i, label in enumerate(labels):
        line = ax.plot(epochs, thetas[:, i], marker="o", label=label)[0]
        ax.axhline(truth[i], color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_title("theta over epochs (dashed: truth)")
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "theta.png")
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths


def plot_predictions(
    truth: torch.Tensor, synthetic: torch.Tensor, physical: torch.Tensor, channels: tuple[str, ...], path: Path
) -> Path:
    """One trajectory ``[T, C, *S]`` of truth, S and P: space-time plots (1D) or final frames (2D)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channel = 0
    data = {
        "truth": truth[:, channel],
        "synthetic S": synthetic[:, channel],
        "physical P": physical[:, channel],
    }
    data = {k: v.detach().cpu().float() for k, v in data.items()}
    errors = {f"|{k[-1]} - truth|": (v - data["truth"]).abs() for k, v in list(data.items())[1:]}
    fig, axes = plt.subplots(1, 5, figsize=(19, 3.6), squeeze=False)
    lo, hi = float(data["truth"].min()), float(data["truth"].max())
    err_hi = max(float(e.max()) for e in errors.values()) or 1.0
    panels = [(k, v, lo, hi, "RdBu_r") for k, v in data.items()] + [(k, v, 0.0, err_hi, "magma") for k, v in errors.items()]
    for ax, (name, values, vmin, vmax, cmap) in zip(axes[0], panels):
        if values.dim() == 2:  # [T, X]: space-time
            image = ax.imshow(values, aspect="auto", origin="lower", vmin=vmin, vmax=vmax, cmap=cmap)
            ax.set_ylabel("frame")
        else:  # [T, Y, X]: the last frame
            image = ax.imshow(values[-1], origin="lower", vmin=vmin, vmax=vmax, cmap=cmap)
            ax.set_ylabel("y")
        ax.set_xlabel("x")
        ax.set_title(f"{name} ({channels[channel]})")
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
