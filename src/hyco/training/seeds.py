"""Seeds inside one run: r copies of a setting, each on its own seeds, trained in lock-step.

A sweep trial with ``repeats: r`` (hyco_ray) trains a :class:`SeedGroup` instead of one trainer,
so each epoch's metrics are the mean over r seeds and early stopping and the searcher see a mean,
not one draw. Seed ``i`` (0-based) is the config with ``run_params.seed + i`` and
``data.seed + i``: its own network initialisation, batches and random interaction states, and its
own simulations and observation noise. Seed 0 is the config itself, so an exported config reruns
seed 0. Each member is the trainer ``hyco train`` would build for its seeds.

Two ways to train them, with the same numbers:

* sequential (the fallback): each member's epoch in turn, member i's numbers bitwise those of a
  single run with its seeds;
* batched (``batched=True``, the default where :func:`can_batch` says the members allow it): each
  member's epoch runs up to what it asks of the physical model (a :meth:`HybridTrainer.epoch_steps`
  request) and the group answers all members' at once: P's rollouts without gradient as one batch
  of states (:meth:`Problem.rollout_seeds`, each state with its own seed's theta), the physical
  steps as one L-BFGS-B solve with a batch dimension ``seed`` (:func:`optimize_seeds`: scipy
  iterates each seed's problem on its own, every loss evaluation rolls all seeds out together).
  A seed's rollouts and its gradient with respect to theta are bitwise its single run's (the
  operations are elementwise per state, each theta's gradient summed over its own states), so
  member i's numbers are still bitwise those of a single run (``tests/test_batched_seeds.py``).
  The networks are not batched: a ``torch.func.vmap`` ensemble differs from the single network
  in round-off (1.6e-6 relative in one UNet forward pass), beyond the 1e-6 the seeds must agree to.
  Timings are the exception: a seed's ``time_physical`` is the batched solve's, its
  ``time_epoch`` runs from its epoch's start to its end (the other seeds' steps in between), and
  the batched rollouts' ``time_conversion`` is counted on seed 0.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch

from hyco.config.schema import RunConfig
from hyco.training.factory import build_trainer
from hyco.training.hybrid import HybridTrainer
from hyco.training.physical import BATCHED_METHODS, PhysicalStep, optimize_seeds


def seed_configs(cfg: RunConfig, repeats: int) -> list[RunConfig]:
    """``cfg`` with ``run_params.seed + i`` and ``data.seed + i`` for i in 0..repeats-1 (0: ``cfg`` itself)."""
    configs = []
    for i in range(repeats):
        member = copy.deepcopy(cfg)
        member.run_params.seed += i
        member.data.seed += i
        configs.append(member)
    return configs


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def aggregate(rows: list[dict]) -> dict:
    """One row from each seed's: numbers are their mean (an int that all seeds share stays that int),
    lists of numbers their elementwise mean, flags true if any seed's is, anything else the first
    seed's; ``per_seed`` holds each seed's numbers (key -> list, seed order)."""
    out: dict = {}
    per_seed: dict[str, list] = {}
    for key, first in rows[0].items():
        values = [r.get(key) for r in rows]
        if _is_number(first) and all(_is_number(v) for v in values):
            same_int = isinstance(first, int) and all(v == first for v in values)
            out[key] = first if same_int else sum(float(v) for v in values) / len(values)
            if not same_int:
                per_seed[key] = values
        elif isinstance(first, bool):
            out[key] = any(bool(v) for v in values)
        elif isinstance(first, list) and all(isinstance(v, list) and len(v) == len(first) for v in values) \
                and all(_is_number(x) for v in values for x in v):
            out[key] = [sum(float(x) for x in col) / len(col) for col in zip(*values)]
            per_seed[key] = values
        else:
            out[key] = first
    out["per_seed"] = per_seed
    return out


def can_batch(members: list[HybridTrainer]) -> str | None:
    """Why the members' physical steps cannot be one batched solve (None: they can): its theta
    optimiser is not phiml's L-BFGS-B/BFGS, its problem's step takes one theta per batch only
    (``Problem.batched_theta``), or the members' problems differ."""
    first = members[0]
    if not first.trains_physical:
        return "the trainer has no physical step"
    if first.tp.physical.method not in BATCHED_METHODS:
        return f"trainer_params.physical.method is {first.tp.physical.method} (batched: {', '.join(BATCHED_METHODS)})"
    if not type(first.problem).batched_theta:
        return f"the problem {first.problem.name} takes one theta per rollout (Problem.batched_theta)"
    if any(type(m) is not type(first) or m.problem.cfg != first.problem.cfg for m in members):
        return "the members' trainers or problems differ"
    return None


def _advance(steps, value, rows: list, i: int):
    """The next request of the epoch generator ``steps`` (sent ``value``), or None when it has
    ended (its metrics then in ``rows[i]``)."""
    try:
        return next(steps) if value is None else steps.send(value)
    except StopIteration as done:
        rows[i] = done.value
        return None


class SeedGroup:
    """r trainers of one setting on seeds offset by 0..r-1, trained in lock-step; quacks like a
    trainer for :func:`hyco.run.run_epochs` (``fit``, ``epoch``, ``history``, state dicts).

    ``batched``: one physical step for all members each epoch (see the module); None: batched
    where :func:`can_batch` allows it; False: each member's epoch in turn."""

    def __init__(self, members: list[HybridTrainer], batched: bool | None = None):
        if not members:
            raise ValueError("a seed group needs at least one trainer")
        self.members = members
        self.tp = members[0].tp
        self.history: list[dict] = []
        why_not = can_batch(members) if len(members) > 1 else "one seed"
        if batched and why_not:
            raise ValueError(f"these seeds cannot be batched: {why_not}")
        self.batched = why_not is None if batched is None else bool(batched)
        #: why the group trains its seeds one after another (None when batched)
        self.sequential_reason = None if self.batched else (why_not or "batched=False")

    @classmethod
    def create(cls, cfg: RunConfig, repeats: int, build: Callable[[RunConfig], HybridTrainer] = build_trainer,
               batched: bool | None = None) -> SeedGroup:
        """The group of ``cfg`` on ``repeats`` seeds, each member built by ``build`` (default: as ``hyco train``)."""
        return cls([build(member) for member in seed_configs(cfg, repeats)], batched=batched)

    @property
    def epoch(self) -> int:
        return self.members[0].epoch

    def fit(self) -> Iterator[dict]:
        """One epoch of every member (in turn, or batched), then their :func:`aggregate`."""
        epochs = zip(*(m.fit() for m in self.members)) if not self.batched else self._batched_epochs()
        for rows in epochs:
            metrics = aggregate(list(rows))
            self.history.append(metrics)
            yield metrics

    def _batched_epochs(self) -> Iterator[list[dict]]:
        """:meth:`HybridTrainer.fit` of every member in lock-step, what they ask of P batched."""
        while self.members[0].epoch < self.tp.epochs:
            for m in self.members:
                m.follow_schedule(m.epoch)
            steps = [m.epoch_steps(m.epoch) for m in self.members]
            rows: list[dict | None] = [None] * len(steps)
            requests = {i: _advance(steps[i], None, rows, i) for i in range(len(steps))}
            while pending := {i: r for i, r in requests.items() if r is not None}:
                answers = self.solve(pending)
                requests = {i: _advance(steps[i], answers[i], rows, i) for i in pending}
            yield [m.end_epoch(row) for m, row in zip(self.members, rows)]

    def solve(self, requests: dict[int, tuple]) -> dict:
        """The answers to the members' requests (:meth:`HybridTrainer.solve`), those of a kind at once:
        P's rollouts of all seeds as one batch, their physical steps as one batched solve."""
        answers: dict = {}
        for kind in dict.fromkeys(r[0] for r in requests.values()):
            these = {i: r[1:] for i, r in requests.items() if r[0] == kind}
            answers.update(self.train_physical(these) if kind == "physical" else self.rollout(these))
        return answers

    def rollout(self, requests: dict[int, tuple]) -> dict[int, torch.Tensor]:
        """P's rollouts ``members[i].physical_rollout(*requests[i])`` without gradient, as one batch
        of states where their numbers of frames agree (bitwise each seed's own rollout)."""
        answers = {}
        for steps in dict.fromkeys(r[1] for r in requests.values()):
            order = [i for i, r in requests.items() if r[1] == steps]
            members = [self.members[i] for i in order]
            with torch.no_grad():
                frames = members[0].problem.rollout_seeds(
                    [requests[i][0] for i in order], [m.physical.theta.to(m.device, m.dtype) for m in members], steps)
            answers.update(zip(order, frames))
        return answers

    def train_physical(self, requests: dict[int, tuple]) -> dict[int, PhysicalStep]:
        """The physical steps ``members[i].train_physical(*requests[i])`` as one batched solve."""
        order = list(requests)
        members = [self.members[i] for i in order]
        losses = [m.physical_loss(*requests[i]) for m, i in zip(members, order)]
        return dict(zip(order, optimize_seeds([m.physical for m in members], losses, [m.initial for m in members])))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "members": [m.state_dict() for m in self.members], "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        if len(state["members"]) != len(self.members):
            raise ValueError(f"the checkpoint holds {len(state['members'])} seeds, this group {len(self.members)}")
        for member, member_state in zip(self.members, state["members"]):
            member.load_state_dict(member_state)
        self.history = list(state["history"])

