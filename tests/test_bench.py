"""Smoke tests of the benchmarks (issue 13): each bench's main runs at its smallest size and writes
its headline JSON, so the benches cannot rot. The figures themselves are in bench/RESULTS.md."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_util import SMALL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

#: the tiny problem, without the keys the benches search or set themselves
TINY = [o for o in SMALL if not o.startswith(("trainer_params.warmup_epochs", "trainer_params.num_random_ics"))]


def test_epoch_bench_breaks_an_epoch_down(tmp_path):
    import epoch

    out = tmp_path / "epoch.json"
    summary = epoch.main(["--problems", "burgers", "--epochs", "1", "--extra", *TINY, "--out", str(out),
                          "--compare", "burgers:model.physical.jit=false"])
    parts = json.loads(out.read_text())["seconds_per_epoch"]
    assert set(parts) == {"burgers", "burgers + model.physical.jit=false"}
    for name in ("S step", "P step", "validation", "P rollouts", "epoch"):
        assert parts["burgers"][name] > 0, name
    assert parts["burgers"]["S step"] + parts["burgers"]["P step"] + parts["burgers"]["validation"] <= parts["burgers"]["epoch"]
    assert summary["device"] == "cpu"


@pytest.mark.slow
def test_sweep_overhead_bench_runs_both_sides(tmp_path):
    import sweep_overhead

    out = tmp_path / "sweep_overhead.json"
    summary = sweep_overhead.main(["--configs", "2", "--epochs", "3", "--variants", "shipped", "--extra", *TINY,
                                   "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["wall_ratio"] == summary["wall_ratio"] > 0
    # the sweep trains the very configs of the sequential loop to the same (bit-identical) final metric
    assert data["max_rel_diff"] == 0 and data["configs"] == 2 and data["epochs"] == 3
    # a report + checkpoint costs something, less than a whole epoch (its size is the bench's finding)
    assert 0 < data["report_fraction"] == data["report_fractions"]["shipped"] < 1


@pytest.mark.slow
def test_asha_vs_fifo_bench_counts_trial_epochs(tmp_path):
    import asha_vs_fifo

    out = tmp_path / "asha_vs_fifo.json"
    asha_vs_fifo.main(["--configs", "3", "--epochs", "2", "--seeds", "0", "--schedulers", "1",
                       "--recommend", "asha g2 r2 (burgers_quick until 2026-12)", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["schedulers"]["fifo"]["trial_epochs"] == [6]
    assert 0 < data["trial_epochs_ratio"] <= 1 and data["best_metric_ratio"] >= 1 - 1e-12


@pytest.mark.slow
def test_search_methods_bench_scores_confirmed_picks(tmp_path):
    """Tiny scale (one problem, 2 trials of 2 epochs, one searcher seed, one fresh seed): every
    method's anytime curve and headline figures are real numbers, FIFO spends exactly the budget."""
    import math

    import search_methods

    out = tmp_path / "search_methods.json"
    methods = ["random", "gp", "tpe-mv+asha", "pbt", "mo-front"]
    search_methods.main(["--problems", "burgers_middle", "--budget", "4", "--epochs", "2", "--seeds", "0",
                         "--confirm-seeds", "1", "--methods", ",".join(methods),
                         "--extra", *TINY, "trainer_params.warmup_epochs=0", "--out", str(out)])
    data = json.loads(out.read_text())
    assert (tmp_path / "search_methods.png").stat().st_size > 0
    by_method = {r["method"]: r for r in data["records"]}
    assert list(by_method) == methods
    for method, record in by_method.items():
        assert len(record["curve"]) == 4 and all(math.isfinite(v) and v > 0 for v in record["curve"]), method
    assert by_method["random"]["trained_epochs"] == 4 and by_method["pbt"]["trained_epochs"] == 4
    problem = data["problems"]["burgers_middle"]
    for method in methods:
        figures = problem["methods"][method]
        assert math.isfinite(figures["final_confirmed_ratio"]["median"]) and figures["final_confirmed_ratio"]["min"] > 0
        reach = figures["compute_to_random_final"]
        assert reach["median"] is None or 0 < reach["median"] <= 1, method
    # random reaches its own final within the budget; the defaults are the reference (ratio 1)
    assert 0 < problem["methods"]["random"]["compute_to_random_final"]["median"] <= 1
    assert problem["methods"]["reference: defaults"]["final_confirmed_ratio"]["median"] == 1.0
    assert problem["guess_param_error"] > 0


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine runs the check itself")
def test_gpu_check_fails_clearly_without_a_gpu():
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), sys.executable], capture_output=True, text=True)
    # no nvidia-smi here (else skipped): the first check stops it, exit 2, before any step runs
    assert proc.returncode == 2, proc.stderr
    assert "gpu_check: FAILED: no NVIDIA GPU here" in proc.stderr and "nothing was run" in proc.stderr
    assert proc.stdout == "" and "== card" not in proc.stdout


def test_repeats_bench_times_seed_groups_side_by_side(tmp_path):
    import repeats

    out = tmp_path / "repeats.json"
    summary = repeats.main(["--repeats", "1,2", "--sequential", "2", "--epochs", "1", "--extra", *TINY, "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["repeats_cost_ratio"]["1"] == 1.0 and data["repeats_cost_ratio"]["2"] > 0
    assert data["sequential_cost_ratio"]["2"] > 0 and summary["problem"] == "burgers"
    assert data["modes"] == {"r=1": "sequential (one seed)", "r=2": "batched", "r=2 sequential": "sequential (batched=False)"}
    for group in ("r=2", "r=2 sequential"):
        parts = data["seconds_per_epoch"][group]
        assert parts["S step"] > 0 and parts["P step"] > 0 and parts["epoch"] >= parts["S step"] + parts["P step"]
