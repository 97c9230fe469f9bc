"""PDE problems: one module each, found by name in :data:`hyco.registry.PROBLEMS`."""

from __future__ import annotations

from hyco.physics import burgers, gray_scott, heat, smoke  # noqa: F401  (register the problems)
from hyco.physics.base import PROBLEMS, Problem, available_problems, make_problem

__all__ = ["PROBLEMS", "Problem", "available_problems", "make_problem"]
