"""PhysicalTrainer: fits the parameters theta of a problem with phiml's ``math.minimize``.

theta is optimised in a scaled, bounded variable z: log(theta) runs over the problem's bounds
(:meth:`Problem.parameter_bounds`) as ``log lo + span * sigmoid(4 z / span)``, span = log(hi/lo). Every
parameter is then O(1) in z whatever its units (an unscaled nu ~ 0.01 makes L-BFGS-B's line
search collapse and report a false "converged" at the initial guess), stays positive, and
never leaves the range where the problem's rollouts are stable. Losses are normalised MSEs.
"""

from __future__ import annotations

import logging
import math as pymath
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from phi import math
from phiml.math import Diverged, NotConverged, Solve, batch, channel

from hyco.config.schema import PhysicalTrainerConfig
from hyco.errors import TrainingError
from hyco.physics import Problem
from hyco.registry import THETA_OPTIMIZERS
from hyco.training.losses import masked_nmse, select_observed

log = logging.getLogger(__name__)

LossFn = Callable[..., torch.Tensor]  # loss(theta) or, fitting the initial states, loss(theta, initial)


@dataclass
class PhysicalStep:
    """What one call of :meth:`PhysicalTrainer.optimize` did."""

    theta: torch.Tensor
    loss_start: float
    loss_best: float
    iterations: int
    evaluations: int
    message: str
    converged: bool
    diverged: bool
    seconds: float


class PhysicalTrainer:
    """Holds the current theta of a problem and improves it a few L-BFGS-B iterations at a time."""

    def __init__(self, problem: Problem, cfg: PhysicalTrainerConfig, theta: torch.Tensor | None = None):
        self.problem = problem
        self.cfg = cfg
        self.theta = (problem.guess if theta is None else theta).to(torch.float64).clone()
        lo, hi = problem.parameter_bounds()
        self.log_lo, self.log_span = torch.log(lo), torch.log(hi) - torch.log(lo)
        #: estimated frame 0 of the observed sims minus the observed (noisy) one, when fitted
        self.initial_correction: torch.Tensor | None = None

    # ----- parametrisation ---------------------------------------------------------------------

    def to_scaled(self, theta: torch.Tensor) -> torch.Tensor:
        """theta -> z, with d log(theta) / dz = 1 mid-range (a unit step is a factor e, as for an
        unbounded log); a theta on a bound maps to a finite z (sigmoid 1e-4 from it)."""
        t = (torch.log(theta.to(torch.float64)) - self.log_lo) / self.log_span
        return torch.logit(t.clamp(1e-4, 1 - 1e-4)) * self.log_span / 4

    def from_scaled(self, z: torch.Tensor) -> torch.Tensor:
        log_lo, span = self.log_lo.to(device=z.device, dtype=z.dtype), self.log_span.to(device=z.device, dtype=z.dtype)
        return torch.exp(log_lo + span * torch.sigmoid(4 * z / span))

    def param_error(self, theta: torch.Tensor | None = None) -> float:
        """|theta - theta*| / |theta*| (vector norms)."""
        theta = self.theta if theta is None else theta.to(torch.float64)
        truth = self.problem.truth
        return float((theta - truth).norm() / truth.norm())

    # ----- one optimisation -----------------------------------------------------------------------

    def estimated_initial(self, observed: torch.Tensor) -> torch.Tensor:
        """The current estimate of frame 0 given the observed one (the observation itself at first)."""
        if self.initial_correction is None or self.initial_correction.shape != observed.shape:
            return observed
        return observed + self.initial_correction.to(observed)

    def optimize(self, loss_fn: LossFn, initial: torch.Tensor | None = None) -> PhysicalStep:
        """Minimise ``loss_fn(theta)`` (a torch scalar) starting from the current theta.

        With ``initial`` (the observed frame 0 of the data sims) and ``fit_initial_state`` on,
        the initial states are optimised with theta (errors in variables: a rollout from a noisy
        start biases theta) and ``loss_fn(theta, estimated_initial)`` is called; the estimate is
        kept for the next call. Its variables are the correction in units of each sim's RMS.

        Suppressed NotConverged: theta becomes the iterate at the cap. Unsuppressed: the error
        reaches the caller and theta is unchanged. Diverged: theta becomes the best point seen
        if it improved on the start, else stays; a warning says so. An exception inside the
        loss is re-raised after the optimiser has shut down (phiml would otherwise leak a
        thread that keeps the interpreter alive).
        """
        start_time = time.perf_counter()
        z0, joint, scale = self.scaled_start(initial)
        track: dict = {"best_loss": pymath.inf, "best_z": z0, "first": None, "error": None}
        # The loss is divided by its value at the start, so abs_tol and scipy's gradient test
        # are relative to where this step began (scipy compares reductions to max(|f|, 1)).

        def evaluate(native: torch.Tensor) -> torch.Tensor:
            theta, start = self.variables(native, initial, joint, scale)
            return loss_fn(theta) if start is None else loss_fn(theta, start)

        z, iterations, evaluations, message, converged, diverged = THETA_OPTIMIZERS.get(self.cfg.method)(
            self, evaluate, z0, track)
        self.accept(z, diverged, message, track, initial, joint, scale)
        return self.step_record(track, iterations, evaluations, message, converged, diverged, start_time)

    def scaled_start(self, initial: torch.Tensor | None) -> tuple[torch.Tensor, bool, torch.Tensor | None]:
        """The optimiser's start z0 (theta scaled, then the initial-state correction in units of each
        sim's RMS when it is fitted), whether it is fitted, and that RMS."""
        z0 = self.to_scaled(self.theta)
        joint = initial is not None and self.cfg.fit_initial_state
        scale = None
        if joint:
            scale = initial.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12)
            scale = scale.reshape(-1, *[1] * (initial.dim() - 1)).to(torch.float64)
            correction = self.estimated_initial(initial).to(torch.float64) - initial.to(torch.float64)
            z0 = torch.cat([z0, (correction / scale).flatten().cpu()])  # z lives on the CPU, like theta
        return z0, joint, scale

    def variables(self, native: torch.Tensor, initial: torch.Tensor | None, joint: bool,
                  scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """theta and (when fitted) the estimated initial states at the optimiser's point ``native``."""
        num_theta = len(self.problem.labels)
        theta = self.from_scaled(native[:num_theta])
        if not joint:
            return theta, None
        return theta, initial + (native[num_theta:].reshape(initial.shape).to(scale) * scale).to(initial)

    def accept(self, z: torch.Tensor | None, diverged: bool, message: str, track: dict,
               initial: torch.Tensor | None, joint: bool, scale: torch.Tensor | None) -> None:
        """Take the optimiser's result ``z`` (diverged: the best point seen if it improved on the start)."""
        num_theta = len(self.problem.labels)
        if diverged:
            first = track["first"] if track["first"] is not None else pymath.inf
            z = track["best_z"] if track["best_loss"] < first else None  # keep the best point seen, if any
        if z is not None and torch.isfinite(z).all():
            self.theta = self.from_scaled(z[:num_theta])
            if joint:
                self.initial_correction = (z[num_theta:].reshape(initial.shape).to(scale) * scale).to(initial.dtype)
        if diverged:
            kept = "the best theta seen" if z is not None else "theta unchanged"
            log.warning("physical step diverged (%s); %s: %s", message, kept, self.theta.tolist())

    def step_record(self, track: dict, iterations: int, evaluations: int, message: str, converged: bool,
                    diverged: bool, start_time: float) -> PhysicalStep:
        return PhysicalStep(
            theta=self.theta.clone(),
            loss_start=track["first"] if track["first"] is not None else pymath.nan,
            loss_best=track["best_loss"],
            iterations=iterations,
            evaluations=evaluations,
            message=message,
            converged=converged and not diverged,
            diverged=diverged,
            seconds=time.perf_counter() - start_time,
        )

    # ----- losses --------------------------------------------------------------------------------

    def data_loss(
        self, initial: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None, stride: int = 1
    ) -> LossFn:
        """L_data(P): masked normalised error of P's rollout from ``initial`` (frame 0) against the
        observed ``targets`` ``[N, T', C, *S]`` (frames stride, 2 stride, ...); ``mask`` is
        ``[*S]`` (fixed) or ``[T', 1, *S]`` (per frame, e.g. moving sensors).

        One rollout per simulation over the whole observed horizon: windows that restart from
        later (noisy) frames would bias theta (errors in variables) and, with a mask, start
        from hidden values.
        With ``fit_initial_state`` the loss takes the estimated start as a second argument and
        frame 0 counts as one more (fully) observed frame, so the estimate stays tied to it.
        """
        num_frames = targets.shape[1] * stride
        weights = frame_weights(targets, mask)

        def loss(theta: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
            pred = self.problem.rollout(initial if start is None else start, theta.to(initial.dtype), num_frames)
            return data_error(pred, start, initial, targets, mask, weights, stride)

        return loss

    # ----- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = {"theta": self.theta.clone()}
        if self.initial_correction is not None:
            state["initial_correction"] = self.initial_correction.clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.theta = state["theta"].to(torch.float64).clone()
        correction = state.get("initial_correction")
        self.initial_correction = None if correction is None else correction.clone()

def frame_weights(targets: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``[T'+1, 1, *S]``: frame 0 in full, then each observed frame's mask (``mask`` ``[*S]`` or
    ``[T', 1, *S]``, None: all points), for L_data with a fitted initial state."""
    observed_mask = torch.ones(targets.shape[3:]) if mask is None else mask.cpu()
    if observed_mask.dim() == targets.dim() - 3:  # [*S], the same in every frame
        observed_mask = observed_mask.expand(targets.shape[1], *observed_mask.shape)[:, None]
    return torch.cat([torch.ones_like(observed_mask[:1]), observed_mask]).to(targets)


def data_error(pred: torch.Tensor, start: torch.Tensor | None, initial: torch.Tensor, targets: torch.Tensor,
               mask: torch.Tensor | None, weights: torch.Tensor, stride: int) -> torch.Tensor:
    """L_data(P) of P's rollout ``pred`` (from ``start``, the estimated frame 0, or from the
    observed ``initial`` when ``start`` is None); see :meth:`PhysicalTrainer.data_loss`."""
    if start is None:
        return masked_nmse(select_observed(pred, stride), targets, mask)
    both = torch.cat([start[:, None], select_observed(pred, stride)], dim=1)
    return masked_nmse(both, torch.cat([initial[:, None], targets], dim=1), weights)


@dataclass
class PhysicalLoss:
    """What one seed's physical step minimises: ``alpha * L_data(P) + (1 - alpha) * L_int(P, S)``,
    L_data against the observed ``targets`` from ``initial``, L_int (when ``interaction`` is not
    None) P's rollouts from ``interaction`` against S's, ``synthetic_targets``."""

    initial: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor | None
    stride: int
    alpha: float = 1.0
    interaction: torch.Tensor | None = None
    synthetic_targets: torch.Tensor | None = None
    interaction_weights: torch.Tensor | None = None
    interaction_steps: int = 0

    def loss_fn(self, physical: PhysicalTrainer) -> LossFn:
        """The loss of :meth:`PhysicalTrainer.optimize` for this seed alone."""
        data_loss = physical.data_loss(self.initial, self.targets, self.mask, self.stride)
        if self.interaction is None:
            return data_loss

        def hybrid_loss(theta: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
            inter = physical.problem.rollout(self.interaction, theta.to(self.initial.dtype), self.interaction_steps)
            return self.alpha * data_loss(theta, start) + (1 - self.alpha) * masked_nmse(
                inter, self.synthetic_targets, self.interaction_weights)

        return hybrid_loss


def seed_losses(problem: Problem, losses: list[PhysicalLoss], thetas: list[torch.Tensor],
                starts: list[torch.Tensor | None]) -> list[torch.Tensor]:
    """Each seed's :class:`PhysicalLoss` at its own theta (and estimated start), the rollouts of all
    seeds as one batch (:meth:`Problem.rollout_seeds`): L_data's, then L_int's of the coupled seeds."""
    num_frames = {spec.targets.shape[1] * spec.stride for spec in losses}
    if len(num_frames) > 1:
        raise ValueError(f"the seeds' observed horizons differ ({sorted(num_frames)} frames)")
    begins = [spec.initial if start is None else start for spec, start in zip(losses, starts)]
    preds = problem.rollout_seeds(begins, [t.to(spec.initial.dtype) for t, spec in zip(thetas, losses)], num_frames.pop())
    out = [data_error(pred, start, spec.initial, spec.targets, spec.mask, frame_weights(spec.targets, spec.mask), spec.stride)
           for pred, start, spec in zip(preds, starts, losses)]
    coupled = [i for i, spec in enumerate(losses) if spec.interaction is not None]
    by_steps: dict[int, list[int]] = {}
    for i in coupled:
        by_steps.setdefault(losses[i].interaction_steps, []).append(i)
    for steps, seeds in by_steps.items():
        inters = problem.rollout_seeds([losses[i].interaction for i in seeds],
                                       [thetas[i].to(losses[i].initial.dtype) for i in seeds], steps)
        for i, inter in zip(seeds, inters):
            spec = losses[i]
            out[i] = spec.alpha * out[i] + (1 - spec.alpha) * masked_nmse(inter, spec.synthetic_targets, spec.interaction_weights)
    return out


#: the theta optimisers :func:`optimize_seeds` runs as one batched solve (phiml's scipy minimize)
BATCHED_METHODS = ("L-BFGS-B", "BFGS")


def optimize_seeds(trainers: list[PhysicalTrainer], losses: list[PhysicalLoss],
                   initials: list[torch.Tensor | None]) -> list[PhysicalStep]:
    """One physical step of each seed of a group: :meth:`PhysicalTrainer.optimize` of
    ``losses[i]`` by ``trainers[i]``. With L-BFGS-B or BFGS and variables of one size, one
    ``math.minimize`` with a batch dimension ``seed``: scipy solves each seed's problem on its own
    (its own iterates, line search and stopping), and each evaluation computes every seed's loss in
    one batched rollout (:func:`seed_losses`). Otherwise (adam; one seed) one seed after another."""
    method = trainers[0].cfg.method
    started = [t.scaled_start(x) for t, x in zip(trainers, initials)]
    if len(trainers) == 1 or method not in BATCHED_METHODS or len({len(z0) for z0, _, _ in started}) > 1:
        return [t.optimize(spec.loss_fn(t), initial=x) for t, spec, x in zip(trainers, losses, initials)]
    start_time = time.perf_counter()
    problem = trainers[0].problem
    tracks = [{"best_loss": pymath.inf, "best_z": z0, "first": None, "error": None} for z0, _, _ in started]

    def objective(z: math.Tensor) -> math.Tensor:
        native = z.native(["seed", "param"])
        try:
            variables = [t.variables(native[i], x, joint, scale)
                         for i, (t, x, (_, joint, scale)) in enumerate(zip(trainers, initials, started))]
            values = seed_losses(problem, losses, [v[0] for v in variables], [v[1] for v in variables])
            if not all(v.requires_grad for v in values):
                raise TrainingError(
                    "the physical loss does not depend on theta (detached, or computed under torch.no_grad?)")
        except Exception as exc:  # stored and re-raised after minimize returns
            for track in tracks:
                track["error"] = track["error"] or exc
            values = [native[i].sum() * float("nan") for i in range(len(trainers))]
        scaled = []
        for i, (track, loss) in enumerate(zip(tracks, values)):
            _track(track, float(loss.detach()), native[i])
            scale = track["first"] if pymath.isfinite(track["first"]) and track["first"] > 0 else 1.0
            scaled.append(loss / scale)
        return math.wrap(torch.stack(scaled), batch("seed"))

    cfg = trainers[0].cfg
    solve = Solve(
        method,
        abs_tol=cfg.abs_tol,
        x0=math.tensor(torch.stack([z0.to(torch.float32) for z0, _, _ in started]), batch("seed"), channel(param=len(started[0][0]))),
        max_iterations=cfg.max_iterations,
        suppress=(NotConverged,) if cfg.suppress_convergence_errors else (),
    )
    with math.SolveTape(solve) as tape:
        try:
            z = math.minimize(objective, solve)
        except Diverged as exc:
            z = exc.result.x
        except NotConverged:
            if tracks[0]["error"] is not None:
                raise TrainingError(f"physical loss failed: {tracks[0]['error']}") from tracks[0]["error"]
            raise
    if tracks[0]["error"] is not None:
        raise TrainingError(f"physical loss failed: {tracks[0]['error']!r}") from tracks[0]["error"]
    result = tape[solve]
    z = z.native(["seed", "param"]).to("cpu", torch.float64)
    diverged, converged = result.diverged.numpy(["seed"]), result.converged.numpy(["seed"])
    iterations, evaluations = result.iterations.numpy(["seed"]), result.function_evaluations.numpy(["seed"])
    steps = []
    for i, (trainer, track, initial, (_, joint, scale)) in enumerate(zip(trainers, tracks, initials, started)):
        message = _seed_message(result.msg, i)
        trainer.accept(z[i], bool(diverged[i]), message, track, initial, joint, scale)
        steps.append(trainer.step_record(track, int(iterations[i]), int(evaluations[i]), message, bool(converged[i]),
                                         bool(diverged[i]), start_time))
    return steps


def _seed_message(msg: object, i: int) -> str:
    """Seed ``i``'s message of a batched solve (phiml nests scipy's per-seed list in lists)."""
    while isinstance(msg, (list, tuple)) and msg:
        msg = msg[i] if len(msg) > i else msg[0]
    return str(msg).splitlines()[0] if str(msg) else ""


#: what a theta optimiser returns: (z, iterations, evaluations, message, converged, diverged)
Minimized = tuple[torch.Tensor | None, int, int, str, bool, bool]


def _track(track: dict, value: float, native: torch.Tensor) -> None:
    """Remember the first loss and the best point seen."""
    if track["first"] is None:
        track["first"] = value
    if pymath.isfinite(value) and value < track["best_loss"]:
        track["best_loss"], track["best_z"] = value, native.detach().to("cpu", torch.float64).clone()


@THETA_OPTIMIZERS.register("L-BFGS-B")
@THETA_OPTIMIZERS.register("BFGS")
def phiml_minimize(trainer: PhysicalTrainer, evaluate: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor,
                   track: dict) -> Minimized:
    """phiml's ``minimize`` (scipy's L-BFGS-B or BFGS) on the scaled variables ``z``."""

    def objective(z: math.Tensor) -> math.Tensor:
        native = z.native(["param"])
        try:
            loss = evaluate(native)
            if not loss.requires_grad:
                raise TrainingError(
                    "the physical loss does not depend on theta (detached, or computed under torch.no_grad?)"
                )
            if loss.dim() != 0:
                raise TrainingError(f"the physical loss must be a scalar, got shape {tuple(loss.shape)}")
        except Exception as exc:  # stored and re-raised after minimize returns
            track["error"] = track["error"] or exc
            loss = native.sum() * float("nan")
        value = float(loss.detach())
        _track(track, value, native)
        scale = track["first"] if pymath.isfinite(track["first"]) and track["first"] > 0 else 1.0
        return math.wrap(loss / scale)

    suppress = (NotConverged,) if trainer.cfg.suppress_convergence_errors else ()
    solve = Solve(
        trainer.cfg.method,
        abs_tol=trainer.cfg.abs_tol,
        x0=math.tensor(z0.to(torch.float32), channel(param=len(z0))),
        max_iterations=trainer.cfg.max_iterations,
        suppress=suppress,
    )
    diverged = False
    with math.SolveTape(solve) as tape:  # only the L-BFGS solve, not e.g. pressure solves
        try:
            z = math.minimize(objective, solve).native(["param"]).to("cpu", torch.float64)
        except Diverged as exc:
            diverged = True
            diverged_message = str(exc).splitlines()[0] if str(exc) else "diverged"
            z = None
        except NotConverged:
            if track["error"] is not None:
                raise TrainingError(f"physical loss failed: {track['error']}") from track["error"]
            raise
    if track["error"] is not None:
        raise TrainingError(f"physical loss failed: {track['error']!r}") from track["error"]
    result = tape[solve]
    message = str(result.msg) if not diverged else diverged_message
    return z, int(result.iterations), int(result.function_evaluations), message, bool(result.converged.all), diverged


@THETA_OPTIMIZERS.register("adam")
def adam_minimize(trainer: PhysicalTrainer, evaluate: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor,
                  track: dict) -> Minimized:
    """``max_iterations`` Adam steps of size ``learning_rate`` on ``z`` (the HYCO authors' choice):
    no line search, so every step costs one rollout and its gradient; z is the iterate after the
    last step. A non-finite loss stops it as diverged (the caller keeps the best point seen)."""
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=trainer.cfg.learning_rate)
    iterations = 0
    for _ in range(trainer.cfg.max_iterations):
        optimizer.zero_grad(set_to_none=True)
        loss = evaluate(z)
        if not loss.requires_grad:
            raise TrainingError("the physical loss does not depend on theta (detached, or computed under torch.no_grad?)")
        value = float(loss.detach())
        _track(track, value, z)
        if not pymath.isfinite(value):
            return None, iterations, iterations + 1, f"non-finite loss {value}", False, True
        loss.backward()
        optimizer.step()
        iterations += 1
    message = f"{iterations} Adam steps"
    return z.detach().to("cpu", torch.float64), iterations, iterations, message, False, False

