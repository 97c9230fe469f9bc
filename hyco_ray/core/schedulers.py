"""The trial schedulers of a sweep (``scheduler.type``), each one object that checks its options,
describes itself for ``hyco tune --dry-run`` and gives the Tuner its settings.

Ray-free: the Tuner's settings are built from the ``tune`` module the runner passes in
(``hyco_ray.runner.sweep.build_tuner``), so checking a spec never imports Ray. A new scheduler is a class
here under ``@SCHEDULERS.register`` (docs/architecture.md, "Where to add things").
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from hyco.config.schema import SCHEDULABLE
from hyco.registry import Registry
from hyco_ray.core.names import STEP_KEY
from hyco_ray.core.params import param_type

#: ``scheduler.type`` -> a :class:`Scheduler` subclass
SCHEDULERS: Registry = Registry("scheduler", "scheduler.type")


@dataclass
class TunerSettings:
    """What a scheduler decides of ``tune.Tuner``'s arguments."""

    scheduler: Any
    #: None: the sweep's Optuna searcher (``hyco_ray.runner.search.build_searcher``)
    search_alg: Any = None
    #: Tune's own distributions, for a scheduler that samples the trials itself
    param_space: dict[str, Any] | None = None
    max_concurrent_trials: int | None = None
    stop: dict[str, Any] | None = None
    #: checkpoints kept per trial (None: all)
    num_to_keep: int | None = 2


class Scheduler:
    """How trials are stopped early or changed while they run; ``spec`` is a ``SweepSpec``."""

    name = ""

    def check(self, spec) -> tuple[str, str] | None:
        """The first mistake in the spec for this scheduler as (key, message), or None."""
        return None

    def check_epochs(self, spec, epochs: int) -> tuple[str, str] | None:
        """The same, once the base config says how many epochs a trial runs."""
        return None

    def describe(self, spec) -> str:
        """The dry run's "early stopping" line."""
        return f"none: every trial runs all {spec.max_t} epochs"

    def describe_searcher(self, spec) -> str | None:
        """The dry run's "searcher" line; None: the sweep's Optuna searcher."""
        return None

    def build(self, spec, tune) -> Any:
        """Tune's scheduler object."""
        raise NotImplementedError

    def tuner_settings(self, spec, tune, seed_offset: int = 0) -> TunerSettings:
        """``tune`` is ``ray.tune``; ``seed_offset``: trials already in the study (a resume adding trials)."""
        return TunerSettings(scheduler=self.build(spec, tune), max_concurrent_trials=spec.max_concurrent)


@SCHEDULERS.register("fifo")
class Fifo(Scheduler):
    """Tune's default: every trial runs all epochs."""

    name = "fifo"

    def build(self, spec, tune) -> Any:
        return tune.schedulers.FIFOScheduler()


@SCHEDULERS.register("asha")
class Asha(Scheduler):
    """Asynchronous successive halving on epochs (continued across restores from checkpoints)."""

    name = "asha"

    def rungs(self, spec) -> list[int]:
        sch = spec.scheduler
        return [r for r in (sch.grace_period * int(sch.reduction_factor) ** k for k in range(32)) if r < spec.max_t]

    def describe(self, spec) -> str:
        return (f"ASHA: rungs after epochs {', '.join(map(str, self.rungs(spec))) or 'none'} of {spec.max_t} "
                f"(keeps the best 1/{spec.scheduler.reduction_factor:g})")

    def build(self, spec, tune) -> Any:
        sch = spec.scheduler
        return tune.schedulers.ASHAScheduler(time_attr=STEP_KEY, metric=spec.metric, mode=spec.mode,
                                             grace_period=sch.grace_period, max_t=spec.max_t,
                                             reduction_factor=sch.reduction_factor)


def mutable_keys(spec) -> list[str]:
    """Space keys a PBT sweep may change during a trial (the trainer reads them every epoch)."""
    return [k for k in spec.space if k.startswith("trainer_params.") and k.removeprefix("trainer_params.") in SCHEDULABLE]


class KeepInSpace:
    """PBT's perturbation (x0.8, x1.2) can leave the space: each value moved back into it."""

    def __init__(self, space: dict) -> None:
        self.space = space

    def __call__(self, config: dict) -> dict:
        for key, p in self.space.items():
            config[key] = param_type(p.type).clip(p, config[key])
        return config


@SCHEDULERS.register("pbt")
class Pbt(Scheduler):
    """Population-based training: the worst trials take over a best trial's checkpoint (the whole
    trainer state) and go on with its settings perturbed; Tune samples the population, seeded."""

    name = "pbt"

    def check(self, spec) -> tuple[str, str] | None:
        sch = spec.scheduler
        rules = [  # key, ok, message
            ("space", mutable_keys(spec), "PBT mutates settings during training, but none of the searched keys can "
             f"change: search at least one of {', '.join('trainer_params.' + k for k in SCHEDULABLE)}"),
            ("objectives", not spec.multi_objective,
             "PBT ranks trials by one metric; drop objectives or use scheduler asha/fifo"),
            ("num_samples", spec.num_samples >= 2, f"is {spec.num_samples}: a PBT population needs at least 2 trials"),
            ("scheduler.perturbation_interval", sch.perturbation_interval >= 1,
             f"is {sch.perturbation_interval}, must be >= 1 (epochs)"),
            ("scheduler.quantile_fraction", 0 < sch.quantile_fraction <= 0.5,
             f"is {sch.quantile_fraction}, must be in (0, 0.5]"),
            ("scheduler.resample_probability", 0 <= sch.resample_probability <= 1,
             f"is {sch.resample_probability}, must be in [0, 1]"),
        ]
        return next(((key, message) for key, ok, message in rules if not ok), None)

    def check_epochs(self, spec, epochs: int) -> tuple[str, str] | None:
        interval = spec.scheduler.perturbation_interval
        if interval >= epochs:
            return ("scheduler.perturbation_interval", f"is {interval}, but a trial runs {epochs} epochs: PBT needs "
                    "an interval shorter than max_t")
        return None

    def describe(self, spec) -> str:
        sch = spec.scheduler
        return (f"{super().describe(spec)}; PBT every {sch.perturbation_interval} epochs: the worst "
                f"{sch.quantile_fraction:g} take over the best {sch.quantile_fraction:g}'s checkpoints and perturb "
                f"{', '.join(mutable_keys(spec))}")

    def describe_searcher(self, spec) -> str | None:
        return f"Tune's random sampler (seed {spec.searcher.seed}) draws the population"

    def build(self, spec, tune) -> Any:
        sch, mutable = spec.scheduler, {k: spec.space[k] for k in mutable_keys(spec)}
        random.seed(spec.searcher.seed)  # PBT draws from Python's random
        return tune.schedulers.PopulationBasedTraining(
            time_attr=STEP_KEY, metric=spec.metric, mode=spec.mode, perturbation_interval=sch.perturbation_interval,
            hyperparam_mutations={k: param_type(p.type).mutation(p, tune) for k, p in mutable.items()},
            quantile_fraction=sch.quantile_fraction, resample_probability=sch.resample_probability,
            # asynchronous: Ray 2.60's synchronous PBT never restarts a paused trial after Tuner.restore
            custom_explore_fn=KeepInSpace(mutable), synch=False)

    def tuner_settings(self, spec, tune, seed_offset: int = 0) -> TunerSettings:
        # a paused trial's result.json is not in storage yet when it restarts: a warning each time
        logging.getLogger("ray.tune.logger.logger").setLevel(logging.ERROR)
        first = [spec.defaults] if spec.defaults and not seed_offset else None
        return TunerSettings(
            scheduler=self.build(spec, tune),
            # PBT takes no searcher: Tune samples the population, at most max_concurrent at a time
            search_alg=tune.search.BasicVariantGenerator(max_concurrent=spec.max_concurrent,
                                                         random_state=spec.searcher.seed + seed_offset,
                                                         points_to_evaluate=first),
            param_space={k: param_type(p.type).tune_domain(p, tune) for k, p in spec.space.items()},
            max_concurrent_trials=None,  # the generator's max_concurrent
            stop={STEP_KEY: spec.max_t},  # ends a trial before PBT could exploit at max_t
            num_to_keep=None,  # a trial's checkpoint may be taken over after it saved more (Ray #27170): keep all
        )


def scheduler_of(spec) -> Scheduler:
    """The scheduler object of ``spec.scheduler.type``."""
    return SCHEDULERS.get(spec.scheduler.type)()
