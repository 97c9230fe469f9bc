"""The science bench's paired summary (issue 20): HYCO against each baseline over the same seeds,
the trivial references, and the per-component mechanism counts, on records written by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

TRUTH, GUESS = [0.02, 0.015, 0.01], [0.06, 0.045, 0.03]


def record(method: str, seed: int, theta: list[float], test_s: float, test_p: float, setting: str = "-") -> dict:
    import hyco_vs_baselines as bench

    return {"problem": "heat", "case": "quarter", "method": method, "setting": setting, "seed": seed,
            "param_error": bench.relative_error(theta, TRUTH), "test_synthetic": test_s, "test_physical": test_p,
            "theta": theta, "truth": TRUTH, "reference_guess": bench.relative_error(GUESS, TRUTH),
            "reference_hidden_zero": bench.relative_error([0.02, 0.0, 0.0], TRUTH), "hidden_components": [1, 2]}


def test_paired_summary_pairs_by_seed_and_counts_the_mechanism():
    import hyco_vs_baselines as bench

    records = []
    for seed in range(6):  # physics-only overestimates the hidden amplitudes, HYCO halves the excess
        over = 0.002 * (seed + 1)
        records += [record("physics_only", seed, [0.02, 0.015 + over, 0.01 + over], 0.06, 0.003),
                    record("synthetic_only", seed, GUESS, 0.05, 0.04),
                    record("hyco", seed, [0.02, 0.015 + over / 2, 0.01 + over / 2], 0.025, 0.002, "default")]
    records.append(record("hyco", 6, TRUTH, 0.02, 0.001, "default"))  # no baselines for seed 6: left out
    bench.backfill(records)
    assert records[0]["guess"] == GUESS
    assert records[0]["reference_hidden_guess"] == pytest.approx(bench.relative_error([0.02, 0.045, 0.03], TRUTH))
    [row] = bench.paired_summary(records)
    assert row["seeds"] == list(range(6))
    assert row["theta_vs_physics_only"]["geomean"] == pytest.approx(0.5)
    assert row["theta_vs_physics_only"]["better"] == 6
    assert row["test_synthetic_vs_synthetic_only"]["geomean"] == pytest.approx(0.5)
    assert row["test_physical_vs_physics_only"]["geomean"] == pytest.approx(2 / 3)
    assert row["theta_vs_hidden_guess"]["better"] == 6
    hidden = [c for c in row["components"] if c["hidden"]]
    assert [c["index"] for c in hidden] == [1, 2]
    assert all(c["hyco_below_physics_only"] == 6 and c["physics_only_above_truth"] == 6 and c["hyco_closer"] == 6
               for c in hidden)
    assert "0.5x" not in bench.summary_text([row]) and "0.5 [" in bench.summary_text([row])


def test_the_paired_figure_draws_every_case_of_the_shipped_results(tmp_path):
    """bench/results/hyco_vs_baselines_paired.json as the bench writes it: one row per case, every
    seed's ratio a dot, on every panel that has that ratio."""
    import json

    import hyco_vs_baselines as bench

    summary = json.loads(bench.RESULTS.with_name("hyco_vs_baselines_paired.json").read_text())
    out = tmp_path / "paired.png"
    bench.plot_paired(summary, out)
    assert out.stat().st_size > 20_000
    rows = [r for r in summary if r["setting"] in ("default", "adam")]
    assert {(r["problem"], r["case"]) for r in rows} >= {("heat", "quarter_model_error"), ("heat", "half_model_error"),
                                                         ("burgers", "half_model_error"), ("heat", "authors_heat")}
    # the per-component figure: every case's theta against its truth and guess (why a ratio is what it is)
    components = tmp_path / "components.png"
    bench.plot_components(summary, components)
    assert components.stat().st_size > 50_000
    authors = next(r for r in rows if r["case"] == "authors_heat" and r["setting"] == "default")
    amplitude = next(c for c in authors["components"] if c["index"] == 1)
    # the README's reading of the authors' case: neither method identifies the hidden bump's amplitude,
    # every seed ends nearer its guess than its truth
    assert amplitude["hidden"] and all(abs(v - amplitude["guess"]) < abs(v - amplitude["truth"])
                                       for v in amplitude["hyco"] + amplitude["physics_only"])
