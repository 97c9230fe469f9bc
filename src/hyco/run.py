"""One training run in-process (no Ray): ``hyco train``, and through hyco_ray every sweep trial.

A run directory holds ``config.yaml`` (the resolved config), ``environment.json`` (what decides
the numbers), ``metrics.jsonl`` (one line per finished epoch, written as it finishes, so a
crash loses nothing), ``checkpoint.pt`` (latest state, for resume and ``hyco evaluate``),
``figures/`` and ``test_metrics.json`` (the test split, scored after the last epoch when asked).
:func:`run_epochs` is the one epoch loop that writes it; a caller adds to each epoch through an
:class:`EpochHook` (a sweep trial: its Tune report and checkpoint), so a trial directory is a run
directory (docs/architecture.md, "One training loop").

``metrics.jsonl`` only grows. A run that goes on from a checkpoint (``--resume``, a retried trial,
a PBT trial that took over another's) first appends the checkpoint's epochs that the file does not
already end with, so :func:`read_metrics` (the latest line of each epoch, a line for epoch e
superseding those recorded before it for later epochs) gives the epochs the state stands on.
"""

from __future__ import annotations

import json
import logging
import math as pymath
import os
import pickle
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from hyco.config import RunConfig, config_to_yaml, load_config_file
from hyco.data import load_or_simulate
from hyco.errors import HycoError, TrainingError
from hyco.physics import make_problem
from hyco.runtime import configure, environment
from hyco.training import HybridTrainer, SeedGroup, aggregate, create_trainer

log = logging.getLogger(__name__)

#: the files of a run directory, named here only (a sweep's trial directory is one too)
CONFIG_FILE, ENVIRONMENT_FILE, METRICS_FILE = "config.yaml", "environment.json", "metrics.jsonl"
CHECKPOINT_FILE, TEST_METRICS_FILE, FIGURES_DIR = "checkpoint.pt", "test_metrics.json", "figures"


class EpochHook(Protocol):
    """What a caller adds to each epoch of :func:`run_epochs` (a sweep trial: hyco_ray.runner.trainable)."""

    def before_record(self, metrics: dict) -> None:
        """Add keys to the epoch's metrics (in place) before they are recorded and checkpointed."""

    def after_record(self, metrics: dict, run_dir: Path) -> None:
        """The epoch is in ``metrics.jsonl`` and ``checkpoint.pt``: report it."""


def _json_safe(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and not pymath.isfinite(v) else v) for k, v in metrics.items()}


def _line(row: dict) -> str:
    return json.dumps(_json_safe(row))


def _effective(lines: list[str]) -> dict[int, str]:
    """epoch -> the line that counts: the latest, a line for epoch e dropping later epochs recorded before it."""
    rows: dict[int, str] = {}
    for line in lines:
        epoch = int(json.loads(line)["epoch"])
        for later in [e for e in rows if e > epoch]:
            del rows[later]
        rows[epoch] = line
    return dict(sorted(rows.items()))


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The epochs a run's latest state stands on, one row each, in order (its ``metrics.jsonl``)."""
    return [json.loads(line) for line in _effective(_lines(Path(run_dir) / METRICS_FILE)).values()]


def metrics_lines(run_dir: str | Path) -> list[dict]:
    """Every line of ``metrics.jsonl``: each epoch trained, also those a resume or PBT exploit replaced."""
    return [json.loads(line) for line in _lines(Path(run_dir) / METRICS_FILE)]


def _append_restored(path: Path, history: list[dict]) -> None:
    """Append the restored epochs from the first where the file's record differs (none on a plain resume)."""
    recorded = _effective(_lines(path))
    lines = [_line(row) for row in history]
    first = next((i for i, line in enumerate(lines) if recorded.get(int(history[i]["epoch"])) != line), len(lines))
    for line in lines[first:]:
        append_line(path, line)


def append_line(path: Path, line: str) -> None:
    """Append one whole line or nothing: a write the disk cannot take (full, quota) is cut off again,
    so a reader never meets half a line."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start, data = os.lseek(fd, 0, os.SEEK_END), (line.rstrip("\n") + "\n").encode()
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


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
    val sim, every channel); of a seed group, its first seed's. Matplotlib is imported here, on the
    first figure: a sweep worker whose trials write none never pays its import (about 1 s)."""
    from hyco.evaluation import plot_losses, plot_predictions, plot_theta, save

    trainer = _members(trainer)[0]
    figures, problem = run_dir / FIGURES_DIR, trainer.problem
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
    checkpoint, metrics_file = run_dir / CHECKPOINT_FILE, run_dir / METRICS_FILE
    if resume and not checkpoint.exists():
        raise HycoError(f"nothing to resume: {run_dir} has no {CHECKPOINT_FILE}")
    if not resume and (checkpoint.exists() or metrics_file.exists()):
        raise HycoError(f"{run_dir} already holds a run: continue it with --resume, or choose a new --run-dir")
    state = load_checkpoint(checkpoint) if resume else None
    return run_epochs(cfg, create_trainer(cfg), run_dir, state=state, evaluate="evaluate" in cfg.run_params.mode,
                      progress=progress)


def run_epochs(cfg: RunConfig, trainer: HybridTrainer, run_dir: Path, state: dict | None = None,
               hook: EpochHook | None = None, evaluate: bool = False, progress: bool = False,
               figures: bool = True) -> dict:
    """The epoch loop of every run (``hyco train``, a sweep trial): from ``state`` if given, each
    epoch checked finite, recorded in ``metrics.jsonl``, checkpointed, then handed to ``hook``; after
    the last one (before it is recorded, so a trial reports them) the figures (unless ``figures`` is
    False: a sweep draws only its pick's, :func:`write_run_figures`) and, with ``evaluate``, the test
    scores (``test_*`` keys of its row). Returns the last epoch's metrics."""
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint, metrics_file = run_dir / CHECKPOINT_FILE, run_dir / METRICS_FILE
    (run_dir / CONFIG_FILE).write_text(config_to_yaml(cfg))
    (run_dir / ENVIRONMENT_FILE).write_text(json.dumps(environment(cfg.run_params), indent=2))
    if state is not None:
        trainer.load_state_dict(state)
        log.info("%s goes on after epoch %d", run_dir, trainer.epoch)
        (run_dir / TEST_METRICS_FILE).unlink(missing_ok=True)  # stale: scored an earlier epoch
        _append_restored(metrics_file, trainer.history)
    metrics_file.touch()  # a run that fails in its first epoch still has its (empty) record
    bar = tqdm(total=trainer.tp.epochs, initial=trainer.epoch, desc=cfg.run_params.experiment_name,
               disable=not progress, unit="epoch")
    try:
        for metrics in _epochs(trainer, run_dir, evaluate, figures):
            if hook is not None:
                hook.before_record(metrics)
            append_line(metrics_file, _line(metrics))
            save_checkpoint(trainer, checkpoint)
            bar.update(1)
            bar.set_postfix(val_loss=f"{metrics['val_loss']:.4g}", param_error=f"{metrics['param_error']:.3g}")
            if hook is not None:
                hook.after_record(metrics, run_dir)
    except (TrainingError, KeyboardInterrupt):
        log.error("training stopped; metrics of %d finished epochs are in %s", trainer.epoch, metrics_file)
        if trainer.history and figures:
            write_figures(trainer, run_dir)
        raise
    finally:
        bar.close()
    final = dict(trainer.history[-1]) if trainer.history else {}
    if evaluate and trainer.epoch >= trainer.tp.epochs and not (run_dir / TEST_METRICS_FILE).exists():  # resumed at its end
        final.update(evaluate_trainer(trainer, run_dir))
    return final


def _epochs(trainer: HybridTrainer, run_dir: Path, evaluate: bool, figures: bool = True) -> Iterator[dict]:
    """``trainer.fit()``, each epoch checked finite; the last one with figures and test scores."""
    for metrics in trainer.fit():
        check_finite(metrics)
        if trainer.epoch >= trainer.tp.epochs:
            if figures:
                write_figures(trainer, run_dir)
            if evaluate:
                metrics.update({k: v for k, v in evaluate_trainer(trainer, run_dir).items() if k.startswith("test_")})
        yield metrics


def _members(trainer) -> list[HybridTrainer]:
    """The trainers of a run: one, or a seed group's (:class:`hyco.training.SeedGroup`)."""
    return list(getattr(trainer, "members", [trainer]))


def evaluate_trainer(trainer: HybridTrainer, run_dir: Path) -> dict:
    """Score the test split (full fields); writes ``test_metrics.json``. A seed group's scores are its
    members' means, each seed's beside them (``per_seed``)."""
    scores = []
    for member in _members(trainer):
        if len(member.dataset.test) == 0:
            raise HycoError("trainer_params.test_sim is empty: nothing to evaluate")
        test = member.evaluate(member.dataset.test)
        scores.append({
            "test_loss": member.combined_loss(test),  # as val_loss combines the val scores
            "test_loss_synthetic": test["loss_synthetic"],
            "test_loss_physical": test["loss_physical"],
            "param_error": member.physical.param_error(),
            "theta": member.physical.theta.tolist(),
            "epoch": member.epoch,
        })
    result = scores[0] if len(scores) == 1 else aggregate(scores)
    (run_dir / TEST_METRICS_FILE).write_text(json.dumps(_json_safe(result), indent=2))
    return result


def rebuild_trainer(run_dir: str | Path, device: str | None = None) -> HybridTrainer | SeedGroup:
    """The trainer of a run directory (of ``hyco train`` or a sweep trial: the same layout) from its
    config and checkpoint; ``device``: where to rebuild it (default: where the run trained)."""
    run_dir = Path(run_dir).expanduser().resolve()
    checkpoint, config = run_dir / CHECKPOINT_FILE, run_dir / CONFIG_FILE
    if not checkpoint.exists():
        raise HycoError(f"{run_dir} has no {CHECKPOINT_FILE}: is it a run directory (of hyco train or a sweep trial)?")
    state = load_checkpoint(checkpoint, map_location=device)
    cfg = load_config_file(config)
    if device is not None:
        cfg.run_params.device = device
    if "members" in state:
        trainer = SeedGroup.create(cfg, int(len(state["members"])), lambda member: create_trainer(member, device=device))
    else:
        trainer = create_trainer(cfg, device=device)
    trainer.load_state_dict(state)
    return trainer


def evaluate_run(run_dir: str | Path) -> dict:
    """Rebuild the trainer of a finished run (:func:`rebuild_trainer`) and score the test split."""
    return evaluate_trainer(rebuild_trainer(run_dir), Path(run_dir).expanduser().resolve())


def write_run_figures(run_dir: str | Path, device: str | None = "cpu") -> list[Path]:
    """``figures/`` of a run directory from its checkpoint, as its last epoch would have drawn them
    (:func:`write_figures`): a sweep draws only its pick's this way, not every complete trial's."""
    return write_figures(rebuild_trainer(run_dir, device), Path(run_dir).expanduser().resolve())
