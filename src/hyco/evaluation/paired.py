"""Paired comparison of two methods over the same seeds: is a gap larger than the seed noise?

Two runs that share a seed (data draw and network init) are compared by their ratio, so the
seed-to-seed spread of the problem itself cancels. Used by sweep confirmation (a setting vs the
defaults) and by the science benches (HYCO vs each baseline). Statistics are scipy's: a
percentile bootstrap of the mean log ratio and an exact two-sided sign test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

#: a ratio this close to 1 counts as a tie in the sign test (round-off, identical runs)
TIE = 1e-9


@dataclass(frozen=True)
class PairedRatio:
    """``method / reference`` per seed; below 1 means ``method`` has the smaller (better) value."""

    ratios: tuple[float, ...]
    geomean: float
    low: float  # bootstrap interval of the geometric mean (``confidence``)
    high: float
    better: int  # seeds with ratio < 1 (ties excluded)
    worse: int
    sign_p: float  # two-sided exact sign test on better vs worse
    confidence: float

    @property
    def n(self) -> int:
        return len(self.ratios)

    def beyond_noise(self, factor: float = 1.0) -> bool:
        """True when the whole interval lies below ``factor`` (an improvement the seeds agree on)."""
        return self.high < factor

    def to_dict(self) -> dict:
        return {**asdict(self), "ratios": list(self.ratios), "n": self.n}

    def text(self) -> str:
        """``0.66x [0.53, 0.82], 6/6 better, sign p=0.031``"""
        return (f"{self.geomean:.3g}x [{self.low:.3g}, {self.high:.3g}], {self.better}/{self.n} better, "
                f"sign p={self.sign_p:.2g}")


def paired_ratio(method: Sequence[float], reference: Sequence[float], confidence: float = 0.95,
                 seed: int = 0, resamples: int = 2000) -> PairedRatio:
    """Per-seed ratios ``method[i] / reference[i]`` (both positive, lower is better), their
    geometric mean, a bootstrap interval of it and a sign test.

    A pair with a non-finite or non-positive value raises: a diverged run or a zero error must be
    decided by the caller (floor it, or count it as worse), not averaged away here.
    """
    m, r = np.asarray(method, dtype=float), np.asarray(reference, dtype=float)
    if m.shape != r.shape or m.ndim != 1 or m.size == 0:
        raise ValueError(f"paired_ratio needs two equally long non-empty lists, got {m.shape} and {r.shape}")
    bad = ~(np.isfinite(m) & np.isfinite(r) & (m > 0) & (r > 0))
    if bad.any():
        raise ValueError(f"paired_ratio needs positive finite values; pairs {np.flatnonzero(bad).tolist()} are not "
                         f"({m[bad].tolist()} vs {r[bad].tolist()})")
    logs = np.log(m / r)
    geomean = math.exp(float(logs.mean()))
    if logs.size > 1 and np.ptp(logs) > 0:
        ci = stats.bootstrap((logs,), np.mean, confidence_level=confidence, n_resamples=resamples,
                             method="percentile", rng=np.random.default_rng(seed)).confidence_interval
        low, high = math.exp(float(ci.low)), math.exp(float(ci.high))
    else:  # one seed, or identical ratios: no spread to resample
        low = high = geomean
    better, worse = int((logs < -TIE).sum()), int((logs > TIE).sum())
    sign_p = float(stats.binomtest(better, better + worse, 0.5).pvalue) if better + worse else 1.0
    return PairedRatio(tuple(float(x) for x in m / r), geomean, low, high, better, worse, sign_p, confidence)
