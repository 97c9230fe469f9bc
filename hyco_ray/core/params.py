"""The parameter types of a search space (``space.<key>.type``), each one object that checks its
entry, gives Optuna and Tune its distribution, says what lies inside it and describes it.

Ray-free: a Tune distribution is built from the ``tune`` module the runner passes in, so checking a
space never imports Ray (docs/architecture.md, "Where to add things": a parameter type is a class
here under ``@PARAM_TYPES.register``, nothing else).
"""

from __future__ import annotations

import math
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from hyco.registry import Registry

#: ``space.<key>.type`` -> a :class:`ParamType` subclass
PARAM_TYPES: Registry = Registry("parameter type", "space.<key>.type")


class ParamType:
    """How one kind of searched key behaves; ``p`` is the space entry (``hyco_ray.core.space.Param``)."""

    name = ""

    def check(self, p) -> tuple[str, str] | None:
        """The first mistake of the entry as (field, message), or None."""
        raise NotImplementedError

    def distribution(self, p) -> BaseDistribution:
        """Optuna's distribution (the searcher, the debug run's first trial)."""
        raise NotImplementedError

    def tune_domain(self, p, tune) -> Any:
        """Tune's distribution (a PBT population is sampled by Tune); ``tune`` is ``ray.tune``."""
        raise NotImplementedError

    def mutation(self, p, tune) -> Any:
        """What PBT perturbs the value with: a Tune distribution (x0.8 / x1.2), or a list (a neighbour)."""
        return self.tune_domain(p, tune)

    def extremes(self, p) -> list[Any]:
        """Values that bound the space: composing the config with each checks them all."""
        raise NotImplementedError

    def contains(self, p, value: Any) -> bool:
        raise NotImplementedError

    def coerce(self, value: Any) -> Any:
        """A plain Python value of this type (numpy scalars and YAML's 3-for-3.0 made exact)."""
        return getattr(value, "item", lambda: value)()

    def clip(self, p, value: Any) -> Any:
        """``value`` moved into the space (PBT's perturbation can leave it)."""
        return value

    def describe(self, p) -> str:
        return f"{self.name} {self.extremes(p)}"


class _Range(ParamType):
    """A number between ``low`` and ``high`` (both included)."""

    integer = False

    def log_scale(self, p) -> bool:
        return bool(p.log)

    def check(self, p) -> tuple[str, str] | None:
        if p.values:
            return "values", f"not allowed for type {self.name} (use low/high)"
        for bound, value in (("low", p.low), ("high", p.high)):
            if value is None or not math.isfinite(value) or (self.integer and not isinstance(value, int)):
                kind = "an integer" if self.integer else "a finite number"
                return bound, f"must be {kind}, got {value!r} (type {self.name} needs low and high)"
        if p.log and not self.integer:
            return "log", "only `log: true|false` on type int (use type loguniform for floats)"
        if p.low >= p.high:
            return "", f"low ({p.low!r}) must be < high ({p.high!r})"
        if self.log_scale(p) and p.low <= 0:
            return "low", f"is {p.low!r}, but a log scale needs low > 0"
        return None

    def extremes(self, p) -> list[Any]:
        return [p.low, p.high]

    def contains(self, p, value: Any) -> bool:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and p.low <= value <= p.high and (not self.integer or value == int(value))

    def coerce(self, value: Any) -> Any:
        value = super().coerce(value)
        return int(value) if self.integer else float(value)

    def clip(self, p, value: Any) -> Any:
        value = min(max(value, p.low), p.high)
        return int(round(value)) if self.integer else float(value)


@PARAM_TYPES.register("uniform")
class Uniform(_Range):
    name = "uniform"

    def distribution(self, p) -> BaseDistribution:
        return FloatDistribution(float(p.low), float(p.high))

    def tune_domain(self, p, tune) -> Any:
        return tune.uniform(float(p.low), float(p.high))


@PARAM_TYPES.register("loguniform")
class LogUniform(_Range):
    name = "loguniform"

    def log_scale(self, p) -> bool:
        return True

    def distribution(self, p) -> BaseDistribution:
        return FloatDistribution(float(p.low), float(p.high), log=True)

    def tune_domain(self, p, tune) -> Any:
        return tune.loguniform(float(p.low), float(p.high))


@PARAM_TYPES.register("int")
class Int(_Range):
    """Integers in ``[low, high]`` (inclusive), optionally on a log scale."""

    name = "int"
    integer = True

    def distribution(self, p) -> BaseDistribution:
        return IntDistribution(int(p.low), int(p.high), log=bool(p.log))

    def tune_domain(self, p, tune) -> Any:
        return (tune.lograndint if p.log else tune.randint)(int(p.low), int(p.high) + 1)  # Tune's high is exclusive


@PARAM_TYPES.register("choice")
class Choice(ParamType):
    """One of ``values``: numbers, strings, booleans or null."""

    name = "choice"

    def check(self, p) -> tuple[str, str] | None:
        if p.low is not None or p.high is not None or p.log:
            return "", "low, high and log are not allowed for type choice (use values)"
        if not p.values or len({repr(v) for v in p.values}) != len(p.values):
            return "values", f"must be a non-empty list without repeats, got {p.values!r}"
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in p.values):
            return "values", f"choices must be numbers, strings, booleans or null, got {p.values!r}"
        return None

    def distribution(self, p) -> BaseDistribution:
        return CategoricalDistribution(tuple(p.values))

    def tune_domain(self, p, tune) -> Any:
        return tune.choice(list(p.values))

    def mutation(self, p, tune) -> Any:
        return list(p.values)  # PBT shifts to a neighbouring choice

    def extremes(self, p) -> list[Any]:
        return list(p.values)

    def contains(self, p, value: Any) -> bool:
        return value in p.values

    def describe(self, p) -> str:
        return f"choice {list(p.values)}"


def param_type(name: str) -> ParamType:
    """The type object of ``space.<key>.type`` (an unknown name lists the registered ones)."""
    return PARAM_TYPES.get(name)()
