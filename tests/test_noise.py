"""The objective's seed noise (space setting ``noise_seeds``): measured from k distinct seeds of the defaults
after a real tiny sweep (real Ray, real Optuna, 1D Burgers), and every trial's margin shown against it in
the summary, ``hyco report`` and the ``--dry-run`` plan."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sweep_util import write_space

from hyco_ray.core.noise import NOISE_SEED_OFFSET, Z, judge, result_path, spread
from hyco_ray.core.space import SpaceError, load_space
from hyco_ray.core.sweep_dir import NOISE_FILE, SUMMARY_FILE
from hyco_ray.runner.sweep import plan_text

K = 3


@pytest.mark.parametrize("k", [1, -1, 101])
def test_noise_seeds_out_of_range_is_one_clear_error(tmp_path, k):
    with pytest.raises(SpaceError, match=rf"noise_seeds: is {k}, must be 0 \(no noise runs\) or 2 to 100"):
        load_space(write_space(tmp_path, noise_seeds=k))


def test_dry_run_plan_shows_what_the_noise_runs_cost(tmp_path):
    plan = plan_text(load_space(write_space(tmp_path, epochs=3, noise_seeds=K, num_samples=5)))
    assert (f"the defaults on {K} extra seeds (run_params.seed = data.seed = {NOISE_SEED_OFFSET}..{NOISE_SEED_OFFSET + K - 1})"
            in plan)
    assert f"{K} x 3 = {3 * K} trial-epochs more (the search: at most 5 x 3 = 15)" in plan
    assert "seed noise: not measured (noise_seeds: 0)" in plan_text(load_space(write_space(tmp_path, noise_seeds=0)))


def test_spread_and_the_beyond_noise_rule():
    values = [1.0, 2.0, 4.0]
    s = spread(values)
    assert s["mean"] == pytest.approx(statistics.mean(values)) and s["cv"] == pytest.approx(statistics.stdev(values) / s["mean"])
    assert s["sd_log"] == pytest.approx(math.log(2))  # logs 0, ln2, 2 ln2
    limit = math.exp(Z * math.log(2))
    noise = {"spread": s}
    assert judge(1.0, noise) == judge(0.99 * limit, noise) == judge(1.01 / limit, noise) == "within noise"
    assert judge(0.99 / limit, noise) == "better beyond noise" and judge(1.01 * limit, noise) == "worse beyond noise"
    assert judge(1.01 * limit, noise, mode="max") == "better beyond noise"
    assert spread([1.0])["n"] == 1 and "sd" not in spread([1.0, math.nan])


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """A 2-trial sweep of 2 epochs with noise_seeds 3, then its report."""
    pytest.importorskip("ray")
    from hyco_ray.core.analysis import write_report
    from hyco_ray.runner.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("noise")
    space = write_space(tmp, cache_dir=tmp / "cache", epochs=2, name="noisy", num_samples=2, noise_seeds=K,
                        searcher={"type": "optuna", "sampler": "random", "seed": 5})
    outcome = run_sweep(load_space(space), num_cpus=2)
    return Path(outcome.experiment_dir), outcome, write_report(outcome.experiment_dir)


@pytest.mark.slow
def test_a_tiny_sweep_measures_the_seed_spread_from_k_distinct_seeds_and_shows_every_margin(noisy):
    from hyco_ray.core.sweep_dir import load_sweep

    sweep_dir, outcome, report = noisy
    doc = json.loads((sweep_dir / NOISE_FILE).read_text())
    seeds = [NOISE_SEED_OFFSET + i for i in range(K)]
    assert doc["complete"] and doc["seeds"] == seeds and doc["epochs"] == 2
    values = []
    for seed in seeds:  # one run per seed, data and network seeded by it, the trial's length, its objective
        run = result_path(sweep_dir, seed).parent
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["run_params"]["seed"] == seed and config["data"]["seed"] == seed
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert last["epoch"] == 2 and doc["objective"][str(seed)] == last["val_loss"]
        values.append(last["val_loss"])
    assert len(set(values)) == K, "the seeds must give different runs"
    sp = doc["spread"]
    assert sp["n"] == K and sp["mean"] == pytest.approx(statistics.mean(values))
    assert sp["cv"] == pytest.approx(statistics.stdev(values) / statistics.mean(values))
    assert sp["min"] == min(values) and sp["max"] == max(values)

    sweep = load_sweep(sweep_dir)  # the noise runs are not trials: the search and its study hold num_samples
    assert len(sweep.trials) == 2 and len(sweep.study().trials) == 2
    ref = sweep.defaults_trial()
    assert ref is not None
    for text in (outcome.summary, (sweep_dir / SUMMARY_FILE).read_text(), report["markdown"].read_text()):
        assert f"seed noise: the defaults on {K} seeds {seeds[0]}..{seeds[-1]} (2 epochs)" in text
        assert f"(cv ±{100 * sp['cv']:.1f} %" in text
        for t in sweep.by_outcome("complete"):  # every complete trial's margin over the defaults trial, with its verdict
            margin = 100 * (t.value("val_loss") / ref.value("val_loss") - 1)
            line = re.search(rf"{t.trial_id}: margin ([+-]\d+\.\d) % vs seed spread ±{100 * sp['cv']:.1f} %: "
                             r"(within noise|better beyond noise|worse beyond noise)", text)
            assert line, text
            assert float(line.group(1)) == pytest.approx(margin, abs=0.051)
            assert line.group(2) == judge(t.value("val_loss") / ref.value("val_loss"), doc)
    table = pd.read_csv(report["csv"])
    assert {"margin", "vs noise"} <= set(table.columns)
    row = table[table.trial_id == ref.trial_id].iloc[0]
    assert row["margin"] == 0 and row["vs noise"] == "within noise"


@pytest.mark.slow
def test_measuring_again_skips_the_finished_noise_runs(noisy, capsys):
    from hyco_ray.core.space import parse_space
    from hyco_ray.runner.sweep import measure_noise

    sweep_dir = noisy[0]
    before = (sweep_dir / NOISE_FILE).read_text()
    spec = parse_space(yaml.safe_load((sweep_dir / "hyco_sweep.yaml").read_text()))
    capsys.readouterr()
    assert measure_noise(spec, str(sweep_dir))  # no Ray needed: nothing left to train
    assert f"{K} of {K} runs done already" in capsys.readouterr().out
    assert json.loads((sweep_dir / NOISE_FILE).read_text()) == json.loads(before)
