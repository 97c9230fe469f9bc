"""PhysicalTrainer: fits the parameters theta of a problem with phiml's ``math.minimize``.

theta is optimised in the scaled variable z = log(theta / guess), so every parameter is O(1)
whatever its units (an unscaled nu ~ 0.01 makes L-BFGS-B's line search collapse and report a
false "converged" at the initial guess) and stays positive. Losses are normalised MSEs.
"""

from __future__ import annotations

import logging
import math as pymath
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from phi import math
from phiml.math import Diverged, NotConverged, Solve, channel

from hyco.config.schema import PhysicalTrainerConfig
from hyco.errors import TrainingError
from hyco.physics import Problem
from hyco.training.losses import masked_nmse, select_observed

log = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor], torch.Tensor]


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

    # ----- parametrisation ---------------------------------------------------------------------

    def to_scaled(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.log(theta.to(torch.float64) / self.problem.guess)

    def from_scaled(self, z: torch.Tensor) -> torch.Tensor:
        return self.problem.guess.to(device=z.device, dtype=z.dtype) * torch.exp(z)

    def param_error(self, theta: torch.Tensor | None = None) -> float:
        """|theta - theta*| / |theta*| (vector norms)."""
        theta = self.theta if theta is None else theta.to(torch.float64)
        truth = self.problem.truth
        return float((theta - truth).norm() / truth.norm())

    # ----- one optimisation -----------------------------------------------------------------------

    def optimize(self, loss_fn: LossFn) -> PhysicalStep:
        """Minimise ``loss_fn(theta)`` (a torch scalar) starting from the current theta.

        Suppressed NotConverged: theta becomes the iterate at the cap. Unsuppressed: the error
        reaches the caller and theta is unchanged. Diverged: theta becomes the best point seen
        if it improved on the start, else stays; a warning says so. An exception inside the
        loss is re-raised after the optimiser has shut down (phiml would otherwise leak a
        thread that keeps the interpreter alive).
        """
        start_time = time.perf_counter()
        z0 = self.to_scaled(self.theta)
        track: dict = {"best_loss": pymath.inf, "best_z": z0, "first": None, "error": None}
        # The loss is divided by its value at the start, so abs_tol and scipy's gradient test
        # are relative to where this step began (scipy compares reductions to max(|f|, 1)).

        def objective(z: math.Tensor) -> math.Tensor:
            native = z.native(["param"])
            try:
                loss = loss_fn(self.from_scaled(native))
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
            if track["first"] is None:
                track["first"] = value
            if pymath.isfinite(value) and value < track["best_loss"]:
                track["best_loss"], track["best_z"] = value, native.detach().to(torch.float64).clone()
            scale = track["first"] if pymath.isfinite(track["first"]) and track["first"] > 0 else 1.0
            return math.wrap(loss / scale)

        suppress = (NotConverged,) if self.cfg.suppress_convergence_errors else ()
        solve = Solve(
            self.cfg.method,
            abs_tol=self.cfg.abs_tol,
            x0=math.tensor(z0.to(torch.float32), channel(param=",".join(self.problem.labels))),
            max_iterations=self.cfg.max_iterations,
            suppress=suppress,
        )
        diverged = False
        with math.SolveTape(solve) as tape:  # only the L-BFGS solve, not e.g. pressure solves
            try:
                z = math.minimize(objective, solve).native(["param"]).to(torch.float64)
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
        iterations = int(result.iterations)
        evaluations = int(result.function_evaluations)
        message = str(result.msg) if not diverged else diverged_message
        if diverged:
            first = track["first"] if track["first"] is not None else pymath.inf
            if track["best_loss"] < first:
                self.theta = self.from_scaled(track["best_z"])
                kept = "the best theta seen"
            else:
                kept = "theta unchanged"
            log.warning("physical step diverged (%s); %s: %s", message, kept, self.theta.tolist())
        elif z is not None and torch.isfinite(z).all():
            self.theta = self.from_scaled(z)
        return PhysicalStep(
            theta=self.theta.clone(),
            loss_start=track["first"] if track["first"] is not None else pymath.nan,
            loss_best=track["best_loss"],
            iterations=iterations,
            evaluations=evaluations,
            message=message,
            converged=bool(result.converged.all) and not diverged,
            diverged=diverged,
            seconds=time.perf_counter() - start_time,
        )

    # ----- losses --------------------------------------------------------------------------------

    def data_loss(
        self, initial: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None, stride: int = 1
    ) -> LossFn:
        """L_data(P): masked normalised rollout error of P from ``initial`` against ``targets``."""
        num_frames = targets.shape[1] * stride

        def loss(theta: torch.Tensor) -> torch.Tensor:
            pred = self.problem.rollout(initial, theta.to(initial.dtype), num_frames)
            return masked_nmse(select_observed(pred, stride), targets, mask)

        return loss

    # ----- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"theta": self.theta.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.theta = state["theta"].to(torch.float64).clone()
