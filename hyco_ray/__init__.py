"""hyco_ray: the Ray Tune layer of hyco-ray (sweeps, trainable, export, reports, CLI)."""

from __future__ import annotations
