"""One training run in-process (no Ray): the debug run and, through hyco_ray, every sweep trial.

A run directory holds ``config.yaml`` (the resolved config), ``environment.json`` (what decides
the numbers), ``metrics.jsonl`` (one line per finished epoch, written as it finishes, so a
crash loses nothing), ``checkpoint.pt`` (latest state, for resume and ``hyco evaluate``),
``figures/`` and, in evaluate mode, ``test_metrics.json``.
"""

from __future__ import annotations

import json
import logging
import math as pymath
import os
import pickle
from datetime import datetime
from pathlib import Path

import torch
from tqdm import tqdm

from hyco.config import RunConfig, config_to_yaml, load_config_file
from hyco.data import load_or_simulate
from hyco.errors import HycoError, TrainingError
from hyco.evaluation import plot_losses, plot_predictions, plot_theta, save
from hyco.physics import make_problem
from hyco.runtime import configure, environment
from hyco.training import HybridTrainer, create_trainer

log = logging.getLogger(__name__)


def _json_safe(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and not pymath.isfinite(v) else v) for k, v in metrics.items()}


def check_finite(metrics: dict) -> dict:
    """End a diverged run: a validation loss that is NaN or inf, or an infinite value anywhere (NaN
    elsewhere means "not computed this epoch"). Every caller (``hyco train``, a sweep trial) uses it."""
    bad = [k for k, v in metrics.items() if isinstance(v, float) and (pymath.isinf(v) or (k.startswith("val_") and pymath.isnan(v)))]
    if bad:
        exc = TrainingError(f"diverged (NaN or inf) at epoch {metrics.get('epoch')}: "
                            + ", ".join(f"{k}={metrics[k]}" for k in bad))
        exc.epoch = metrics.get("epoch")
        raise exc
    return metrics


def save_checkpoint(trainer: HybridTrainer, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(trainer.state_dict(), tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str | None = None) -> dict:
    """A checkpoint as data only (``weights_only=True``: a crafted file cannot run code); one clear error."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise HycoError(f"refused checkpoint {path}: it holds objects other than tensors and plain data "
                            "(loading it could run code); hyco writes no such files") from None
        raise HycoError(f"checkpoint {path} is not readable (corrupt or not written by hyco): {exc}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HycoError(f"checkpoint {path} is not readable (truncated, corrupt or not written by hyco): {reason}") from None


def write_figures(trainer: HybridTrainer, run_dir: Path) -> list[Path]:
    """``figures/``: losses.png (val losses; parameter error), theta.png, predictions.png (the first
    val sim, every channel)."""
    figures, problem = run_dir / "figures", trainer.problem
    paths = []
    if trainer.history:
        paths.append(save(plot_losses(trainer.history), figures / "losses.png"))
        paths.append(save(plot_theta(trainer.history, problem.truth.tolist(), problem.labels), figures / "theta.png"))
    traj = trainer.val[:1]
    with torch.no_grad():
        trainer.model.eval()
        syn = trainer.synthetic_rollout(traj[:, 0], traj.shape[1] - 1)[0]
        phys = trainer.physical_rollout(traj[:, 0], traj.shape[1] - 1)[0]
    bounds = getattr(problem, "bounds", None)  # domain lengths (x first); None: grid cells
    spacing = [float(bounds.size.vector[n]) / r for n, r in zip("xyz", problem.resolution)] if bounds is not None else None
    fig = plot_predictions(traj[0, 1:], syn, phys, problem.channels, where=f"val sim {trainer.tp.val_sim[0]}",
                           frame_dt=problem.frame_dt, spacing=spacing)
    paths.append(save(fig, figures / "predictions.png"))
    return paths


def prepare_dataset(cfg: RunConfig, progress: bool = False) -> tuple[torch.Tensor, Path, bool]:
    """The dataset of ``cfg`` from the cache, else simulated and cached, seeded and in the run's
    precision as a training run builds it (``hyco data``; a sweep before its trials start).
    Returns (trajectories, cache file, cache hit)."""
    configure(cfg.run_params)
    problem = make_problem(cfg.model.physical)
    with tqdm(total=cfg.data.num_simulations, desc=f"simulating {problem.name}", unit="sim", disable=not progress) as bar:
        return load_or_simulate(problem, cfg.data, cfg.run_params.dtype, progress=bar.update)


def default_run_dir(cfg: RunConfig) -> Path:
    """``<output_dir>/<experiment_name>-<date>-<time>``: where ``hyco train`` writes without ``--run-dir``."""
    return Path(cfg.run_params.output_dir) / f"{cfg.run_params.experiment_name}-{datetime.now():%Y%m%d-%H%M%S}"


def describe_run(final: dict, run_dir: Path) -> str:
    """What ``hyco train`` prints of a finished run: the last epoch's losses, parameter error, theta and
    test scores (JSON), the share of field<->tensor conversion in the last epoch, the run directory."""
    shown = {k: final[k] for k in ("epoch", "val_loss", "val_loss_physical", "param_error", "theta") if k in final}
    lines = [json.dumps({**shown, **{k: v for k, v in final.items() if k.startswith("test_")}}, indent=2)]
    if final.get("time_epoch"):
        lines.append(f"field<->tensor conversion: {100 * final['time_conversion'] / final['time_epoch']:.2f}% of the last epoch")
    return "\n".join([*lines, f"run directory: {run_dir.resolve()}"])


def train_run(cfg: RunConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train ``cfg`` writing everything into ``run_dir``; returns the last epoch's metrics."""
    run_dir = Path(run_dir).expanduser().resolve()
    checkpoint = run_dir / "checkpoint.pt"
    metrics_file = run_dir / "metrics.jsonl"
    if resume and not checkpoint.exists():
        raise HycoError(f"nothing to resume: {run_dir} has no checkpoint.pt")
    if not resume and (checkpoint.exists() or metrics_file.exists()):
        raise HycoError(f"{run_dir} already holds a run: continue it with --resume, or choose a new --run-dir")
    state = load_checkpoint(checkpoint) if resume else None
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_to_yaml(cfg))
    trainer = create_trainer(cfg)
    (run_dir / "environment.json").write_text(json.dumps(environment(cfg.run_params), indent=2))
    if state is not None:
        trainer.load_state_dict(state)
        log.info("resumed %s after epoch %d", run_dir, trainer.epoch)
        (run_dir / "test_metrics.json").unlink(missing_ok=True)  # stale: scored an earlier epoch
    bar = tqdm(total=cfg.trainer_params.epochs, initial=trainer.epoch, desc=cfg.run_params.experiment_name,
               disable=not progress, unit="epoch")
    try:
        with metrics_file.open("a") as out:
            for metrics in trainer.fit():
                check_finite(metrics)
                out.write(json.dumps(_json_safe(metrics)) + "\n")
                out.flush()
                save_checkpoint(trainer, checkpoint)
                bar.update(1)
                bar.set_postfix(val_loss=f"{metrics['val_loss']:.4g}", param_error=f"{metrics['param_error']:.3g}")
    except TrainingError:
        log.error("training stopped; metrics of %d finished epochs are in %s", trainer.epoch, metrics_file)
        raise
    finally:
        bar.close()
        if trainer.history:
            write_figures(trainer, run_dir)
    final = dict(trainer.history[-1]) if trainer.history else {}
    if "evaluate" in cfg.run_params.mode:
        final.update(evaluate_trainer(trainer, run_dir))
    return final


def evaluate_trainer(trainer: HybridTrainer, run_dir: Path) -> dict:
    """Score the test split (full fields); writes ``test_metrics.json``."""
    if len(trainer.dataset.test) == 0:
        raise HycoError("trainer_params.test_sim is empty: nothing to evaluate")
    scores = trainer.evaluate(trainer.dataset.test)
    result = {
        "test_loss": trainer.combined_loss(scores),  # as val_loss combines the val scores
        "test_loss_synthetic": scores["loss_synthetic"],
        "test_loss_physical": scores["loss_physical"],
        "param_error": trainer.physical.param_error(),
        "theta": trainer.physical.theta.tolist(),
        "epoch": trainer.epoch,
    }
    (run_dir / "test_metrics.json").write_text(json.dumps(_json_safe(result), indent=2))
    return result


def evaluate_run(run_dir: str | Path) -> dict:
    """Rebuild the trainer of a finished run (of ``hyco train``, or a sweep's trial directory:
    ``hyco_config.yaml`` and the latest ``checkpoint_*/trainer_state.pt``) and score the test split."""
    run_dir = Path(run_dir).expanduser().resolve()
    checkpoint, config = run_dir / "checkpoint.pt", run_dir / "config.yaml"
    trial_checkpoints = sorted(run_dir.glob("checkpoint_*/trainer_state.pt"))
    if not checkpoint.exists() and trial_checkpoints and (run_dir / "hyco_config.yaml").exists():
        checkpoint, config = trial_checkpoints[-1], run_dir / "hyco_config.yaml"
    if not checkpoint.exists():
        raise HycoError(f"{run_dir} has no checkpoint.pt: is it a run directory of hyco train (or a sweep's trial directory)?")
    state = load_checkpoint(checkpoint)
    cfg = load_config_file(config)
    trainer = create_trainer(cfg)
    trainer.load_state_dict(state)
    return evaluate_trainer(trainer, run_dir)
