"""``hyco confirm`` on a real tiny sweep (real Ray, real Optuna, 1D Burgers), and export after it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

from sweep_util import write_space  # noqa: E402

from hyco_ray.cli import main  # noqa: E402
from hyco_ray.core.space import load_space  # noqa: E402
from hyco_ray.runner.confirm import (  # noqa: E402
    CONFIRM_DIR,
    CONFIRM_JSON,
    CONFIRM_MD,
    DEFAULTS,
    PHYSICS_ONLY,
    SEED_OFFSET,
    SYNTHETIC_ONLY,
    TEST_METRICS,
    run_confirm,
)
from hyco_ray.runner.sweep import run_sweep  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    """A 3-trial sweep of 2 epochs, then ``confirm --top 1 --seeds 2``: 4 settings x 2 seeds."""
    tmp = tmp_path_factory.mktemp("confirm")
    space = write_space(tmp, cache_dir=tmp / "cache", epochs=2, name="conf", num_samples=3,
                        searcher={"type": "optuna", "sampler": "random", "seed": 3})
    outcome = run_sweep(load_space(space), num_cpus=2)
    doc = run_confirm(outcome.experiment_dir, top=1, seeds=2, num_cpus=2)
    return Path(outcome.experiment_dir), doc


def test_confirm_on_a_tiny_sweep_writes_the_paired_table_and_the_verdict(confirmed, capsys):
    sweep_dir, doc = confirmed
    names = [s["name"] for s in doc["settings"]]
    assert names[0] == DEFAULTS and names[2:] == [PHYSICS_ONLY, SYNTHETIC_ONLY] and names[1].startswith("trial_")
    assert doc["seeds"] == [SEED_OFFSET, SEED_OFFSET + 1] and doc["complete"]
    on_disk = json.loads((sweep_dir / CONFIRM_JSON).read_text())
    assert on_disk["verdict"] == doc["verdict"]
    for name in names:  # every run recorded, at the sweep's trial length, with every metric
        for seed in doc["seeds"]:
            run = on_disk["runs"][name][str(seed)]
            assert run["epoch"] == 2 and math.isfinite(run["objective"])
            assert all(k in run for k in TEST_METRICS)
            config = yaml.safe_load((sweep_dir / CONFIRM_DIR / name / f"seed_{seed}" / "config.yaml").read_text())
            assert config["run_params"]["seed"] == seed and config["data"]["seed"] == seed
    # different seeds give different defaults: the fresh seeds were really used
    d = on_disk["runs"][DEFAULTS]
    assert d[str(SEED_OFFSET)]["objective"] != d[str(SEED_OFFSET + 1)]["objective"]
    for name in names[1:]:  # paired statistics against the defaults, per metric
        for key in ("objective", *TEST_METRICS):
            entry = on_disk["paired"][name][key]
            assert entry["n"] == 2 and entry["low"] <= entry["geomean"] <= entry["high"]
            runs = on_disk["runs"]
            expected = [runs[name][str(s)][key] / runs[DEFAULTS][str(s)][key] for s in doc["seeds"]]
            assert entry["ratios"] == pytest.approx(expected)
    obj = on_disk["paired"][names[1]]["objective"]
    beats = obj["high"] < 1
    assert (on_disk["winner"] == names[1]) == beats
    assert on_disk["verdict"].startswith(f"setting {names[1]} beats" if beats else "no setting beats the defaults")
    md = (sweep_dir / CONFIRM_MD).read_text()
    assert all(f"| {n} |" in md for n in names) and "Verdict:" in md and "bootstrap interval" in md

    # a rerun skips every finished run (no Ray started: nothing to train)
    capsys.readouterr()
    again = run_confirm(sweep_dir, top=1, seeds=2)
    assert "8 of 8 runs done already" in capsys.readouterr().out and again["verdict"] == doc["verdict"]
    assert json.loads((sweep_dir / CONFIRM_JSON).read_text())["runs"] == on_disk["runs"]


def test_export_follows_the_confirmation_verdict(confirmed, tmp_path, capsys):
    sweep_dir, _ = confirmed
    doc = json.loads((sweep_dir / CONFIRM_JSON).read_text())
    trial = doc["settings"][1]

    def export(*extra: str) -> tuple[str, dict, str]:
        out = tmp_path / "best.yaml"
        assert main(["export", str(sweep_dir), "-o", str(out), *extra]) == 0
        text = out.read_text()
        return text, yaml.safe_load(text), capsys.readouterr().out

    for winner in (None, trial["name"]):  # both verdicts, whichever the run gave first
        doc["winner"] = winner
        doc["verdict"] = f"setting {winner} beats the defaults" if winner else "no setting beats the defaults beyond seed noise: keep them"
        (sweep_dir / CONFIRM_JSON).write_text(json.dumps(doc))
        text, config, printed = export()
        alpha = config["trainer_params"]["alpha"]
        if winner:
            assert alpha == pytest.approx(trial["params"]["trainer_params.alpha"])
            assert "confirmed on 2 fresh seeds" in text.splitlines()[0] and "confirmed" in printed
        else:  # the defaults: the base config's alpha, and why, in the file and on stdout
            assert alpha == pytest.approx(0.5) and "keep them" in text.splitlines()[0] and "keep them" in printed
    _, config, _ = export("--trial", trial["name"].removeprefix("trial_"))  # --trial: any trial, as before
    assert config["trainer_params"]["alpha"] == pytest.approx(trial["params"]["trainer_params.alpha"])


@pytest.mark.parametrize("argv, says", [
    (["--top", "0"], "--top 0"),
    (["--seeds", "1"], "--seeds 1"),
])
def test_confirm_bad_input_is_one_line_and_exit_2(confirmed, tmp_path, capsys, argv, says):
    sweep_dir, _ = confirmed
    assert main(["confirm", str(sweep_dir), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1


def test_confirm_refuses_a_directory_that_is_not_a_sweep(tmp_path, capsys):
    assert main(["confirm", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "hyco_sweep.yaml" in err and len(err.splitlines()) == 1
    assert main(["confirm", str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_confirm_refuses_a_sweep_without_finished_trials(confirmed, tmp_path, capsys):
    sweep_dir, _ = confirmed
    (tmp_path / "hyco_sweep.yaml").write_text((sweep_dir / "hyco_sweep.yaml").read_text())  # started, no trial ran
    assert main(["confirm", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no Tune experiment state" in err and len(err.splitlines()) == 1


def test_confirm_recognises_the_enqueued_defaults_trial(confirmed):
    """The sweep's first trial ran the defaults (rows say defaults: true): confirm retrains it as the defaults,
    with its search value, never as a trial of its own."""
    from hyco_ray.core.sweep_dir import load_sweep
    from hyco_ray.runner.confirm import plan_settings

    sweep = load_sweep(confirmed[0])
    enqueued = sweep.defaults_trial()
    assert enqueued is not None and enqueued.history[0]["defaults"] is True
    settings = plan_settings(sweep, top=len(sweep.trials), baselines=False)
    names = [s.name for s in settings]
    assert names[0] == DEFAULTS and f"trial_{enqueued.trial_id}" not in names
    assert len(names) == len(sweep.by_outcome("complete"))  # every other complete trial, each once
    assert settings[0].search_value == enqueued.value(sweep.spec.metric)
