"""Seeds inside one run: r copies of a setting, each on its own seeds, trained in lock-step.

A sweep trial with ``repeats: r`` (hyco_ray) trains a :class:`SeedGroup` instead of one trainer,
so each epoch's metrics are the mean over r seeds and early stopping and the searcher see a mean,
not one draw. Seed ``i`` (0-based) is the config with ``run_params.seed + i`` and
``data.seed + i``: its own network initialisation, batches and random interaction states, and its
own simulations and observation noise. Seed 0 is the config itself, so an exported config reruns
seed 0. Each member is the trainer ``hyco train`` would build for its seeds, trained epoch by
epoch in turn: member i's numbers are those of a single run with its seeds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

from hyco.config.schema import RunConfig
from hyco.training.factory import build_trainer
from hyco.training.hybrid import HybridTrainer


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


class SeedGroup:
    """r trainers of one setting on seeds offset by 0..r-1, stepped one epoch each in turn; quacks
    like a trainer for :func:`hyco.run.run_epochs` (``fit``, ``epoch``, ``history``, state dicts)."""

    def __init__(self, members: list[HybridTrainer]):
        if not members:
            raise ValueError("a seed group needs at least one trainer")
        self.members = members
        self.tp = members[0].tp
        self.history: list[dict] = []

    @classmethod
    def create(cls, cfg: RunConfig, repeats: int, build: Callable[[RunConfig], HybridTrainer] = build_trainer) -> SeedGroup:
        """The group of ``cfg`` on ``repeats`` seeds, each member built by ``build`` (default: as ``hyco train``)."""
        return cls([build(member) for member in seed_configs(cfg, repeats)])

    @property
    def epoch(self) -> int:
        return self.members[0].epoch

    def fit(self) -> Iterator[dict]:
        """One epoch of every member in turn, then their :func:`aggregate`."""
        for rows in zip(*(m.fit() for m in self.members)):
            metrics = aggregate(list(rows))
            self.history.append(metrics)
            yield metrics

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "members": [m.state_dict() for m in self.members], "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        if len(state["members"]) != len(self.members):
            raise ValueError(f"the checkpoint holds {len(state['members'])} seeds, this group {len(self.members)}")
        for member, member_state in zip(self.members, state["members"]):
            member.load_state_dict(member_state)
        self.history = list(state["history"])

