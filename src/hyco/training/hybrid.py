"""HybridTrainer: HYCO, the physical model P_theta and the network S_w trained in turns.

One epoch (docs/architecture.md, "HYCO in one epoch"), read top to bottom in :meth:`HybridTrainer.run_epoch`:

1. warm-up (epoch < warmup_epochs): S fits the observed data only;
2. synthetic step: Adam on  alpha_S * L_data(S) + (1 - alpha_S) * L_int(S, P);
   physical step every ``interleave_frequency`` epochs, against the S just updated: L-BFGS-B on
   alpha_P * L_data(P) + (1 - alpha_P) * L_int(P, S), warm-started, a few iterations;
   L_int compares the two rollouts from the interaction states on the interaction region;
3. validation: full-length rollouts of S and P on the val sims, parameter error; the sweep
   objective ``val_loss`` is the geometric mean of the two relative errors.

``alpha_S = trainer_params.alpha``, ``alpha_P = trainer_params.alpha_physical``; both = 1 trains
both models on data alone: both baselines from the same code path.
:class:`SyntheticTrainer` and :class:`PhysicsOnlyTrainer` switch one model off.
"""

from __future__ import annotations

import logging
import math as pymath
import time
from collections.abc import Callable, Generator, Iterator

import torch
from torch import nn

from hyco.config.schedule import apply_settings, settings, settings_at
from hyco.config.schema import RunConfig
from hyco.data import Dataset
from hyco.data.generate import DTYPES
from hyco.data.observe import box_mask
from hyco.errors import TrainingError
from hyco.physics import Problem
from hyco.registry import METRICS, OPTIMIZERS, TRAINERS
from hyco.runtime import generator, require_precision, resolve_device
from hyco.training.losses import masked_nmse, select_observed
from hyco.training.physical import PhysicalLoss, PhysicalStep, PhysicalTrainer

log = logging.getLogger(__name__)


def resolution_floor(spatial: tuple[int, ...] | torch.Size) -> float:
    """The relative error below which the combined objective counts a model as exact: ``1/N**2``
    for the fewest grid points ``N`` along an axis, the relative truncation error of a second-order
    scheme on this grid (Burgers, 128 points: 6.1e-5; 32x32: 1e-3). The val sims come from the
    same discretised solver as P, so P matching them more closely than that agrees with the
    discretisation, not better with the physics: a difference there (round-off, 1e-7 against 1e-5)
    must not outvote S's (issue 19: on full clean Burgers data it ranked the setting whose S was
    2.5x worse first)."""
    return float(min(spatial)) ** -2.0


@TRAINERS.register("hybrid")
class HybridTrainer:
    """HYCO on one problem; ``fit()`` yields one metrics dict per epoch.

    It is handed the problem P, the network S and the dataset, built for it by
    :func:`hyco.training.build_trainer` (or by a test or a user who brings their own).

    Training data are the observations alone (:mod:`hyco.data.observe`): rollouts of both models
    start at frame 0 of each observed simulation and are compared with the observed points of
    later frames. S is unrolled over the whole observed horizon in segments of
    ``num_predict_steps`` observed frames (truncated backpropagation: the next segment starts
    from S's own, detached prediction with the observed points of that frame put in), so no
    window ever starts from a hidden value.
    """

    name = "hybrid"
    trains_synthetic = True
    trains_physical = True

    def __init__(self, cfg: RunConfig, problem: Problem, model: nn.Module, dataset: Dataset,
                 device: str | torch.device | None = None):
        self.cfg = cfg
        self.tp = cfg.trainer_params
        self.device = torch.device(device) if device is not None else resolve_device(cfg.run_params)
        self.dtype = DTYPES[cfg.run_params.dtype]
        require_precision(cfg.run_params)
        self.problem = problem
        self.dataset = dataset
        obs = self.dataset.observations
        self.stride = obs.stride
        self.mask = obs.mask.to(self.device, self.dtype)  # [*S] points observed in some frame
        self.frame_masks = obs.frame_masks.to(self.device, self.dtype)  # [T', 1, *S] each observed frame's
        self.initial = obs.initial.to(self.device, self.dtype)  # [N, C, *S] frame 0, full
        self.targets = obs.frames.to(self.device, self.dtype)  # [N, T', C, *S] observed points only
        self.val = self.dataset.val.to(self.device, self.dtype)
        self.model = model.to(self.device, self.dtype)
        self.metric = METRICS.get(self.tp.metric)
        self.optimizer = OPTIMIZERS.build(self.tp.synthetic.optimizer, self.model.parameters(),
                                          lr=self.tp.synthetic.learning_rate)
        self.physical = PhysicalTrainer(self.problem, self.tp.physical)
        self.base_settings = settings(self.tp)  # trainer_params.schedule changes them from here
        self.couple()
        self.epoch = 0  # finished epochs
        self.history: list[dict] = []
        self.best: dict | None = None  # keep_best: the best epoch, its metrics and S's and P's state

    def couple(self) -> None:
        """The coupling as the settings say now (again after a scheduled change)."""
        # one model alone sees only data: alpha = 1 is both baselines
        coupled = self.trains_synthetic and self.trains_physical
        self.alpha = self.tp.alpha if coupled else 1.0  # S's data weight
        self.alpha_physical = self.tp.alpha_physical if coupled else 1.0  # P's
        # where L_int compares the models: [*S] weights, or None when there is nowhere to compare
        region = interaction_mask(self.tp.interaction_region, self.mask)
        self.interaction_weights = region if bool(region.any()) else None

    def follow_schedule(self, epoch: int) -> None:
        """Take the settings ``trainer_params.schedule`` gives ``epoch`` (0-based): a function of
        the epoch alone, so a resumed run continues the same schedule."""
        if self.tp.schedule:
            apply_settings(self.tp, settings_at(self.base_settings, self.tp, epoch + 1))
            self.couple()

    # ----- rollouts --------------------------------------------------------------------------------

    def synthetic_rollout(self, initial: torch.Tensor, num_steps: int) -> torch.Tensor:
        """S applied autoregressively: ``[B, num_steps, C, *S]`` (differentiable unless no_grad)."""
        frames = []
        state = initial
        for _ in range(num_steps):
            state = self.model(state)
            frames.append(state)
        return torch.stack(frames, dim=1)

    def physical_rollout(self, initial: torch.Tensor, num_steps: int, theta: torch.Tensor | None = None) -> torch.Tensor:
        """P_theta from ``initial``: ``[B, num_steps, C, *S]``, fields converted to arrays."""
        theta = self.physical.theta if theta is None else theta
        return self.problem.rollout(initial, theta.to(self.device, self.dtype), num_steps)

    def interaction_initial_states(self, epoch: int) -> torch.Tensor:
        """Where the two models are compared: frame 0 of the observed sims (known in full; unless
        ``interaction_observed_starts`` is off) and ``num_random_ics`` fresh random initial
        states, drawn anew every epoch."""
        starts = [self.initial] if self.tp.interaction_observed_starts else []
        if self.tp.num_random_ics > 0:
            fresh = self.problem.sample_initial(self.tp.num_random_ics, generator(self.cfg.run_params.seed, 3, epoch))
            starts.append(fresh.to(self.device, self.dtype))
        return torch.cat(starts)

    @property
    def interaction_steps(self) -> int:
        return self.tp.num_predict_steps * self.stride

    # ----- the two steps ---------------------------------------------------------------------------

    def train_synthetic(self, alpha: float, epoch: int, interaction: torch.Tensor | None,
                        physical_targets: torch.Tensor | None = None) -> float:
        """One pass of Adam over the observed sims; returns the mean training loss.

        Each optimiser step trains one segment of ``num_predict_steps`` observed frames of a batch
        of sims on ``alpha * L_data(S) + (1 - alpha) * L_int(S, P)``; P's predictions from the
        ``interaction`` states (no gradient; ``physical_targets`` where already rolled out) are
        the interaction targets, taken in turn.
        """
        self.model.train()
        size = self.tp.synthetic.batch_size
        gen = generator(self.cfg.run_params.seed, 4, epoch)
        order = torch.randperm(len(self.initial), generator=gen).to(self.device)
        coupled = alpha < 1 and interaction is not None
        if coupled:
            if physical_targets is None:
                with torch.no_grad():
                    physical_targets = self.physical_rollout(interaction, self.interaction_steps)
            inter_order = torch.randperm(len(interaction), generator=gen).to(self.device)
        n, stride = self.tp.num_predict_steps, self.stride
        losses = []
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            state = self.initial[idx]
            for first in range(0, self.targets.shape[1], n):
                targets = self.targets[idx, first : first + n]
                pred = self.synthetic_rollout(state, targets.shape[1] * stride)
                masks = self.frame_masks[first : first + n]
                loss = masked_nmse(select_observed(pred, stride), targets, masks)
                if coupled:
                    m = len(inter_order)
                    step_number = len(losses)
                    pick = inter_order[torch.arange(step_number * size, step_number * size + min(size, m)) % m]
                    inter = self.synthetic_rollout(interaction[pick], self.interaction_steps)
                    loss = alpha * loss + (1 - alpha) * masked_nmse(inter, physical_targets[pick], self.interaction_weights)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"diverged (NaN or inf): the synthetic loss became {float(loss.detach())} at epoch {epoch + 1}; lower "
                        f"trainer_params.synthetic.learning_rate (now {self.tp.synthetic.learning_rate})"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()
                losses.append(float(loss.detach()))
                # the next segment starts from S's own prediction, with the observed points of
                # that (observed) frame put in: no hidden value, and S is not left to drift
                last = masks[-1]
                state = (last * targets[:, -1] + (1 - last) * pred[:, -1]).detach()
        return sum(losses) / len(losses)

    def train_physical(self, alpha: float, interaction: torch.Tensor | None) -> PhysicalStep:
        """A few warm-started L-BFGS-B iterations on alpha * L_data(P) + (1 - alpha) * L_int(P, S),
        against S as it is now (after this epoch's synthetic step)."""
        return self.physical.optimize(self.physical_loss(alpha, interaction).loss_fn(self.physical), initial=self.initial)

    def physical_loss(self, alpha: float, interaction: torch.Tensor | None) -> PhysicalLoss:
        """What the physical step minimises now: L_data alone when ``alpha`` is 1 or there is
        nowhere to compare, else with L_int against S's rollouts from ``interaction`` (S as it is now)."""
        spec = PhysicalLoss(self.initial, self.targets, self.frame_masks, self.stride)
        if alpha == 1 or interaction is None:
            return spec
        self.model.eval()
        with torch.no_grad():
            synthetic_targets = self.synthetic_rollout(interaction, self.interaction_steps)
        spec.alpha, spec.interaction, spec.synthetic_targets = alpha, interaction, synthetic_targets
        spec.interaction_weights, spec.interaction_steps = self.interaction_weights, self.interaction_steps
        return spec

    # ----- validation ------------------------------------------------------------------------------

    def evaluate(self, trajectories: torch.Tensor) -> dict[str, float]:
        """The validation metric (``trainer_params.metric``, relative L2 by default) of full-length
        rollouts of S and P from frame 0 (full, clean fields)."""
        return drive(self.evaluate_steps(trajectories), self.solve)

    def evaluate_steps(self, trajectories: torch.Tensor) -> Generator[tuple, torch.Tensor, dict[str, float]]:
        """:meth:`evaluate` as a generator: it yields P's rollout as a request (:meth:`solve`)."""
        trajectories = trajectories.to(self.device, self.dtype)
        initial, truth = trajectories[:, 0], trajectories[:, 1:]
        self.model.eval()
        with torch.no_grad():
            synthetic = self.synthetic_rollout(initial, truth.shape[1])
        physical = yield "rollout", initial, truth.shape[1]
        return {
            "loss_synthetic": float(self.metric(synthetic, truth)),
            "loss_physical": float(self.metric(physical, truth)),
        }

    def combined_loss(self, scores: dict[str, float]) -> float:
        """The sweep objective ``val_loss``: the geometric mean of S's and P's relative rollout
        errors when both are trained (P's is the measurable proxy for theta), else the trained
        model's. Geometric, so a relative improvement of either model counts the same: S's error
        is 10-100x P's, and their arithmetic mean ranked a quick sweep's trials against theta
        (Spearman -0.15 with param_error; the geometric mean +0.93, bench/RESULTS.md).

        Each error counts from the grid's :func:`resolution_floor` up: on clean data P can reproduce
        the val sims to round-off (an H200 sweep reported ``val_loss=0``); a product with 0 would
        hide S, and one with 1e-7 against 1e-5 would let P's round-off outvote S's error."""
        if self.trains_synthetic and self.trains_physical:
            floor = resolution_floor(self.val.shape[3:])
            return pymath.sqrt(max(scores["loss_synthetic"], floor) * max(scores["loss_physical"], floor))
        return scores["loss_synthetic"] if self.trains_synthetic else scores["loss_physical"]

    # ----- the epoch --------------------------------------------------------------------------------

    def is_physical_epoch(self, epoch: int) -> bool:
        """Physical steps at epochs warmup, warmup + f, warmup + 2f, ... (0-based)."""
        if not self.trains_physical or epoch < self.tp.warmup_epochs:
            return False
        return (epoch - self.tp.warmup_epochs) % self.tp.interleave_frequency == 0

    def run_epoch(self, epoch: int) -> dict:
        """One HYCO epoch (0-based ``epoch``); returns its metrics."""
        return drive(self.epoch_steps(epoch), self.solve)

    def solve(self, request: tuple):
        """What an epoch generator asks for: ``("rollout", initial, num_steps)``, P's rollout with
        no gradient; ``("physical", alpha, interaction)``, the physical step (:meth:`train_physical`).
        A seed group answers the requests of all its seeds at once (:mod:`hyco.training.seeds`)."""
        kind, *args = request
        if kind == "rollout":
            with torch.no_grad():
                return self.physical_rollout(*args)
        return self.train_physical(*args)

    def epoch_steps(self, epoch: int) -> Generator[tuple, object, dict]:
        """:meth:`run_epoch` as a generator: it yields the parts that need P (its rollouts without
        gradient, the physical step) as requests and is sent their answers (:meth:`solve`, or a seed
        group's batched answer); it returns the epoch's metrics."""
        tic = time.perf_counter()
        self.problem.conversion_seconds = 0.0
        warmup = epoch < self.tp.warmup_epochs
        alpha_s, alpha_p = (1.0, 1.0) if warmup else (self.alpha, self.alpha_physical)
        physical_step = self.is_physical_epoch(epoch)
        coupled = (alpha_s < 1 or (physical_step and alpha_p < 1)) and self.interaction_weights is not None
        interaction = self.interaction_initial_states(epoch) if coupled else None
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(epoch)

        t_syn = time.perf_counter()
        physical_targets = None  # P's predictions from the interaction states: L_int(S, P)'s targets
        if self.trains_synthetic and alpha_s < 1 and interaction is not None:
            physical_targets = yield "rollout", interaction, self.interaction_steps
        train_loss = (self.train_synthetic(alpha_s, epoch, interaction, physical_targets)
                      if self.trains_synthetic else pymath.nan)
        t_syn = time.perf_counter() - t_syn

        step: PhysicalStep | None = None
        if physical_step:  # in turns: against the S just updated
            step = yield "physical", alpha_p, interaction

        val = yield from self.evaluate_steps(self.val)
        if not pymath.isfinite(val["loss_physical"]) or not torch.isfinite(self.physical.theta).all():
            raise TrainingError(f"diverged (NaN or inf): the physical model at epoch {epoch + 1} "
                                f"(theta={self.physical.theta.tolist()})")
        return {
            "epoch": epoch + 1,
            "phase": "warmup" if warmup else "hybrid",
            "physical_step": physical_step,
            "coupled": coupled,  # the interaction term was on (off: warm-up, alpha = 1, nowhere to compare)
            "train_loss": train_loss,
            "physical_loss": step.loss_best if step else pymath.nan,
            "val_loss": self.combined_loss(val),
            "val_loss_synthetic": val["loss_synthetic"],
            "val_loss_physical": val["loss_physical"],
            "learning_rate": self.learning_rate(epoch),
            "param_error": self.physical.param_error(),
            "theta": self.physical.theta.tolist(),
            "lbfgs_iterations": step.iterations if step else 0,
            "lbfgs_diverged": bool(step.diverged) if step else False,
            "time_synthetic": t_syn,
            "time_physical": step.seconds if step else 0.0,
            "time_conversion": self.problem.conversion_seconds,
            "time_epoch": time.perf_counter() - tic,
        }

    def learning_rate(self, epoch: int) -> float:
        """S's learning rate in ``epoch`` (0-based): a function of the epoch alone, so a resumed
        run continues the same schedule (cosine: CosineAnnealingLR's closed form, to the floor)."""
        syn = self.tp.synthetic
        if syn.lr_schedule == "constant" or self.tp.epochs <= 1:
            return syn.learning_rate
        progress = epoch / (self.tp.epochs - 1)
        return syn.learning_rate * (syn.lr_floor + (1 - syn.lr_floor) * (1 + pymath.cos(pymath.pi * progress)) / 2)

    def fit(self) -> Iterator[dict]:
        """Train from the next unfinished epoch to ``epochs``, yielding each epoch's metrics. With
        ``keep_best``, each epoch's metrics also say the best epoch so far and its values (``best_*``),
        and the last epoch ends with the best epoch's state restored."""
        while self.epoch < self.tp.epochs:
            self.follow_schedule(self.epoch)
            yield self.end_epoch(self.run_epoch(self.epoch))

    def end_epoch(self, metrics: dict) -> dict:
        """Count the epoch just trained (its ``metrics``): the best epoch so far, the history."""
        self.epoch += 1
        if self.tp.keep_best:
            self.track_best(metrics)
            if self.epoch == self.tp.epochs:
                self.restore_best()
                metrics["restored_best_epoch"] = self.best["epoch"]
        self.history.append(metrics)
        return metrics

    #: what an epoch's metrics say of the best epoch so far (as ``best_<key>``)
    BEST_KEYS = ("val_loss", "val_loss_synthetic", "val_loss_physical", "param_error")

    def track_best(self, metrics: dict) -> None:
        """Keep S's and P's state of the epoch with the lowest ``keep_best`` metric (the first on a tie)."""
        value = metrics[self.tp.keep_best]
        if self.best is None or (pymath.isfinite(value) and not value >= self.best["value"]):
            self.best = {"epoch": metrics["epoch"], "value": value,
                         "metrics": {k: metrics[k] for k in self.BEST_KEYS},
                         "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                         "physical": {k: v.clone() for k, v in self.physical.state_dict().items()}}
        metrics["best_epoch"] = self.best["epoch"]
        metrics.update({f"best_{k}": v for k, v in self.best["metrics"].items()})

    def restore_best(self) -> None:
        """S and P as they were after the best epoch (the optimizer's state stays the last epoch's)."""
        if self.best is not None:
            self.model.load_state_dict(self.best["model"])
            self.physical.load_state_dict(self.best["physical"])

    def train(self) -> dict:
        """Run to the end; returns the last epoch's metrics."""
        for _ in self.fit():
            pass
        return self.history[-1] if self.history else {}

    # ----- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "physical": self.physical.state_dict(),
            "history": list(self.history),
            "best": self.best,  # keep_best: the best epoch's state so far (None without)
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.physical.load_state_dict(state["physical"])
        self.history = list(state["history"])
        self.best = state.get("best")


@TRAINERS.register("synthetic")
class SyntheticTrainer(HybridTrainer):
    """The network alone, on observed data (theta stays at its guess)."""

    name = "synthetic"
    trains_physical = False


@TRAINERS.register("physical")
class PhysicsOnlyTrainer(HybridTrainer):
    """The physical model alone: a physical step every epoch, on observed data."""

    name = "physical"
    trains_synthetic = False

    def is_physical_epoch(self, epoch: int) -> bool:
        return True


def drive(steps: Generator, solve: Callable) -> dict:
    """Run an epoch generator (:meth:`HybridTrainer.epoch_steps`) to its end, sending it
    ``solve(request)`` for each request it yields; returns what it returns."""
    try:
        request = next(steps)
        while True:
            request = steps.send(solve(request))
    except StopIteration as done:
        return done.value


def interaction_mask(region: object, observed: torch.Tensor) -> torch.Tensor:
    """Where L_int compares the models, ``[*S]``: outside the ``observed`` points ("unobserved"),
    everywhere ("all"), or inside a box [[x0, x1], [y0, y1]] (fractions of the domain)."""
    if region == "unobserved":
        return 1 - observed
    if region == "all":
        return torch.ones_like(observed)
    return box_mask([list(axis) for axis in region], tuple(observed.shape)).to(observed)
