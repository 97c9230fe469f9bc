"""Settings that change during training (``trainer_params.schedule``): the schedule a PBT trial
followed, replayed by ``hyco train``. The trainer reads these keys afresh every epoch, so a change
takes effect at the epoch it names; nothing else about the run changes."""

from __future__ import annotations

import copy
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hyco.config.schema import SCHEDULABLE, RunConfig, ScheduleStep, TrainerParams
from hyco.errors import ConfigError


def get_setting(tp: TrainerParams, key: str) -> Any:
    """``tp``'s value of a dotted key relative to trainer_params (``physical.max_iterations``)."""
    obj = tp
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def settings(tp: TrainerParams) -> dict[str, Any]:
    """The schedulable settings of ``tp`` as they are now."""
    return {key: get_setting(tp, key) for key in SCHEDULABLE}


def apply_settings(tp: TrainerParams, values: dict[str, Any]) -> None:
    """Set dotted keys on ``tp`` in place (the physical trainer holds ``tp.physical`` itself)."""
    for key, value in values.items():
        *path, last = key.split(".")
        owner = tp
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, last, value)


def settings_at(base: dict[str, Any], tp: TrainerParams, epoch: int) -> dict[str, Any]:
    """The settings in effect in ``epoch`` (1-based): ``base`` with every step up to it applied."""
    values = dict(base)
    for step in tp.schedule:
        if step.from_epoch <= epoch:
            values.update(step.set)
    return values


def check_schedule(cfg: RunConfig, validate) -> None:
    """Steps in epoch order within the run, schedulable keys only, each step's values of the right
    type (coerced in place, as YAML may write ``3`` for ``3.0``) and valid where they apply."""
    tp, last = cfg.trainer_params, 0
    for i, step in enumerate(tp.schedule):
        where = f"trainer_params.schedule[{i}]"
        if not last < step.from_epoch <= tp.epochs:
            raise ConfigError(f"{where}.from_epoch is {step.from_epoch!r}, but steps must be in increasing epoch "
                              f"order within 1..trainer_params.epochs = {tp.epochs}")
        unknown = sorted(set(step.set) - set(SCHEDULABLE))
        if unknown:
            raise ConfigError(f"{where}.set: {', '.join(unknown)} cannot change during training; "
                              f"schedulable: {', '.join(SCHEDULABLE)}")
        last = step.from_epoch
    scheduled = copy.deepcopy(cfg)
    scheduled.trainer_params.schedule = []
    for i, step in enumerate(tp.schedule):
        node = OmegaConf.structured(scheduled.trainer_params)
        try:
            for key, value in step.set.items():
                OmegaConf.update(node, key, value, merge=False)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"trainer_params.schedule[{i}].set: {str(exc).splitlines()[0]}") from None
        typed = OmegaConf.to_object(node)
        step.set = {key: get_setting(typed, key) for key in step.set}
        apply_settings(scheduled.trainer_params, step.set)
        try:
            validate(scheduled)
        except ConfigError as exc:
            raise ConfigError(f"trainer_params.schedule[{i}] (from epoch {step.from_epoch}): {exc}") from None


def schedule_from_history(rows: list[dict], settings: dict[str, Any], next_epoch: int) -> tuple[dict, list[ScheduleStep]]:
    """The settings a trial started with and the changes since, as ``trainer_params.schedule``: from
    the epochs behind its checkpoint (each row carries the settings it was trained with; under PBT
    they include the exploited trial's) and its own settings from ``next_epoch`` on."""
    segments = [(int(r["epoch"]), r["settings"]) for r in rows if "settings" in r] + [(next_epoch, settings)]
    first, steps, now = segments[0][1], [], segments[0][1]
    for epoch, values in segments[1:]:
        changed = {k: v for k, v in values.items() if now.get(k) != v}
        fixed = sorted(k for k in changed if k.removeprefix("trainer_params.") not in SCHEDULABLE)
        if fixed:
            raise ConfigError(f"{', '.join(fixed)} changed at epoch {epoch}, but only {', '.join(SCHEDULABLE)} "
                              "(under trainer_params) can change during training")
        if changed:
            steps.append(ScheduleStep(epoch, {k.removeprefix("trainer_params."): v for k, v in changed.items()}))
        now = values
    return first, steps
