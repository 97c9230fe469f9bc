"""Paired seed statistics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from hyco.evaluation.paired import paired_ratio


def test_ratios_geomean_and_counts_by_hand():
    p = paired_ratio([1.0, 2.0, 9.0, 4.0], [2.0, 2.0, 3.0, 8.0])
    assert p.ratios == pytest.approx((0.5, 1.0, 3.0, 0.5))
    assert p.geomean == pytest.approx((0.5 * 1.0 * 3.0 * 0.5) ** 0.25)
    assert (p.better, p.worse, p.n) == (2, 1, 4)  # the equal pair is a tie
    assert p.sign_p == pytest.approx(1.0)  # 2 of 3: no evidence
    assert p.low <= p.geomean <= p.high


def test_consistent_improvement_is_beyond_noise_and_a_mixed_one_is_not():
    steady = paired_ratio([0.7, 0.75, 0.8, 0.62, 0.46, 0.66], [1.0] * 6)
    assert steady.better == 6 and steady.sign_p == pytest.approx(2 / 64)  # exact: 2 * 0.5**6
    assert steady.beyond_noise() and steady.high < 0.85
    mixed = paired_ratio([0.18, 3.81, 1.67], [1.0, 1.0, 1.0])  # issue 19's per-seed ratios
    assert not mixed.beyond_noise() and mixed.low < 1 < mixed.high


def test_one_seed_has_no_interval_and_bad_values_are_refused():
    one = paired_ratio([2.0], [4.0])
    assert one.low == one.high == one.geomean == 0.5
    with pytest.raises(ValueError, match="positive finite"):
        paired_ratio([1.0, math.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="equally long"):
        paired_ratio([1.0], [1.0, 2.0])
    assert "better" in one.text() and one.to_dict()["n"] == 1
