"""Search-space files: the shipped ones load; each kind of mistake is one clear error; no Ray started."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from sweep_util import BASE_SPACE, write_space

from hyco.config import override_value
from hyco_ray.core.space import SpaceError, load_space, parse_space, sample_params

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
SEARCHED = {"trainer_params.alpha", "trainer_params.warmup_epochs", "trainer_params.physical.max_iterations",
            "trainer_params.interleave_frequency"}


@pytest.fixture(autouse=True)
def no_ray_started():
    yield
    import sys

    if "ray" in sys.modules:
        assert not sys.modules["ray"].is_initialized(), "validating a search space must not start Ray"


@pytest.mark.parametrize("name", ["burgers_quick", "burgers_full", "heat", "smoke"])
def test_shipped_spaces_load(name):
    spec = load_space(SPACES / f"{name}.yaml")
    assert SEARCHED <= set(spec.space)
    assert spec.scheduler.type == "asha" and spec.max_t >= spec.scheduler.grace_period
    assert any(o.startswith("data.cache_dir=/") for o in spec.overrides), "cache_dir must be absolute for trials"
    if name == "burgers_quick":
        assert spec.num_samples >= 8 and spec.max_concurrent == 2 and spec.resources.gpu == 0
    else:
        assert 0 < spec.resources.gpu <= 1


def test_spec_round_trips_through_the_sweep_dir_copy(tmp_path):
    spec = load_space(write_space(tmp_path))
    again = parse_space(yaml.safe_load(spec.to_yaml()))
    assert again.to_dict() == spec.to_dict()
    assert again.max_t == 3


def test_sampled_params_are_seeded_and_inside_the_bounds(tmp_path):
    spec = load_space(SPACES / "burgers_quick.yaml")
    a, b = sample_params(spec, seed=3), sample_params(spec, seed=3)
    assert a == b
    for _ in range(50):
        p = sample_params(spec, seed=random.randrange(10**6))
        assert 0.05 <= p["trainer_params.alpha"] <= 1.0
        assert p["trainer_params.interleave_frequency"] in spec.space["trainer_params.interleave_frequency"].values
        lo, hi = spec.space["trainer_params.warmup_epochs"].low, spec.space["trainer_params.warmup_epochs"].high
        assert lo <= p["trainer_params.warmup_epochs"] <= hi


@pytest.mark.parametrize("value", [0.1 + 0.2, 1e-5, 3, True, "adam", "with space", "s3://bucket/x", [1, 2]])
def test_override_values_round_trip(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"k={override_value(value)}").value()
    assert parsed == value and type(parsed) is type(value)


def _bad(tmp_path: Path, **changes) -> str:
    with pytest.raises(SpaceError) as info:
        load_space(write_space(tmp_path, **changes))
    return str(info.value)


def _with_param(key: str, dist: dict) -> dict:
    space = json.loads(json.dumps(BASE_SPACE["space"]))
    space[key] = dist
    return space


# one test per kind of mistake; each message names the key
def test_unknown_top_level_key(tmp_path):
    msg = _bad(tmp_path, num_sample=3)
    assert "num_sample: unknown key" in msg and "num_samples" in msg


def test_unknown_key_in_a_section(tmp_path):
    assert "scheduler.grace: unknown key" in _bad(tmp_path, scheduler={"type": "asha", "grace": 1})


def test_low_not_below_high(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.alpha", {"type": "uniform", "low": 0.8, "high": 0.2}))
    assert "space.trainer_params.alpha" in msg and "low (0.8) must be < high (0.2)" in msg


def test_loguniform_low_not_positive(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.synthetic.learning_rate",
                                           {"type": "loguniform", "low": 0.0, "high": 0.01}))
    assert "space.trainer_params.synthetic.learning_rate.low" in msg and "log scale needs low > 0" in msg


def test_unknown_distribution_type(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.alpha", {"type": "normal", "low": 0, "high": 1}))
    assert "space.trainer_params.alpha.type" in msg and "uniform" in msg


def test_int_range_with_float_bounds(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.warmup_epochs", {"type": "int", "low": 0, "high": 1.5}))
    assert "space.trainer_params.warmup_epochs.high" in msg and "integer" in msg


def test_empty_choice(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.interleave_frequency", {"type": "choice", "values": []}))
    assert "space.trainer_params.interleave_frequency.values" in msg


def test_key_that_is_not_a_config_path(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.alhpa", {"type": "uniform", "low": 0.1, "high": 0.9}))
    assert "space.trainer_params.alhpa" in msg and "alhpa" in msg.split("rejected", 1)[1]


def test_value_the_config_rejects(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.alpha", {"type": "uniform", "low": 0.5, "high": 1.5}))
    assert "space.trainer_params.alpha: value 1.5 rejected" in msg and "must be in [0, 1]" in msg


def test_choice_value_the_config_rejects(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.physical.method",
                                           {"type": "choice", "values": ["L-BFGS-B", "newton"]}))
    assert "space.trainer_params.physical.method: value 'newton' rejected" in msg


def test_choice_value_of_the_wrong_type(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.interleave_frequency",
                                           {"type": "choice", "values": [1, "often"]}))
    assert "space.trainer_params.interleave_frequency: value 'often' rejected" in msg


def test_warmup_beyond_the_epochs(tmp_path):
    msg = _bad(tmp_path, overrides=["trainer_params.epochs=3"],
               space=_with_param("trainer_params.warmup_epochs", {"type": "int", "low": 0, "high": 9}))
    assert "space.trainer_params.warmup_epochs: value 9 rejected" in msg


def test_unknown_base_config(tmp_path):
    msg = _bad(tmp_path, base="burgers_nope")
    assert "base:" in msg and "no config named 'burgers_nope'" in msg


def test_bad_fixed_override(tmp_path):
    msg = _bad(tmp_path, overrides=["trainer_params.epochs=0"])
    assert "overrides:" in msg and "trainer_params.epochs" in msg


def test_override_that_is_also_searched(tmp_path):
    msg = _bad(tmp_path, overrides=["trainer_params.alpha=0.5"])
    assert "trainer_params.alpha is also in space" in msg


def test_thread_count_is_the_sweeps_business(tmp_path):
    msg = _bad(tmp_path, space=_with_param("run_params.num_threads", {"type": "int", "low": 1, "high": 2}))
    assert "space.run_params.num_threads" in msg and "resources.cpu" in msg


def test_searching_the_epochs_is_refused(tmp_path):
    msg = _bad(tmp_path, space=_with_param("trainer_params.epochs", {"type": "int", "low": 3, "high": 6}))
    assert "space.trainer_params.epochs" in msg and "max_t" in msg


def test_max_t_must_match_the_epochs(tmp_path):
    msg = _bad(tmp_path, scheduler={"type": "asha", "max_t": 10})
    assert "scheduler.max_t" in msg and "trainer_params.epochs is 3" in msg


def test_grace_period_beyond_max_t(tmp_path):
    assert "scheduler.grace_period" in _bad(tmp_path, scheduler={"type": "asha", "grace_period": 5})


def test_unknown_metric(tmp_path):
    assert "metric: is 'val_los'" in _bad(tmp_path, metric="val_los")


def test_bad_mode(tmp_path):
    assert "mode: is 'minimum'" in _bad(tmp_path, mode="minimum")


def test_bad_resources(tmp_path):
    assert "resources.gpu" in _bad(tmp_path, resources={"cpu": 1, "gpu": 1.5})
    assert "resources.cpu" in _bad(tmp_path, resources={"cpu": 0})


def test_bad_study_storage(tmp_path):
    assert "searcher.storage" in _bad(tmp_path, searcher={"storage": "optuna.db"})


def test_bad_sample_count(tmp_path):
    assert "num_samples" in _bad(tmp_path, num_samples=0)
    # types are OmegaConf's, as in the run configs: a quoted "8" is 8, a word is refused
    assert "num_samples: Value 'eight' of type 'str' could not be converted to Integer" in _bad(tmp_path, num_samples="eight")


def test_missing_required_key(tmp_path):
    assert "base: missing" in _bad(tmp_path, base=None)


def test_not_yaml_or_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(path)
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "missing.yaml")


def test_parse_alone_needs_no_config_composition():
    spec = parse_space(json.loads(json.dumps(BASE_SPACE)))
    assert spec.scheduler.max_t is None and spec.num_threads == 1


def test_tune_cli_reports_a_bad_file_without_a_traceback(tmp_path, capsys):
    from hyco_ray.cli import main

    path = write_space(tmp_path, space=_with_param("trainer_params.alpha", {"type": "uniform", "low": 1, "high": 0}))
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hyco: error:") and "space.trainer_params.alpha" in err and "Traceback" not in err


def test_debug_run_trains_one_sampled_config_in_process(tmp_path, capsys):
    from hyco_ray.cli import main

    space = write_space(tmp_path, cache_dir=tmp_path / "cache", epochs=2)
    run_dir = tmp_path / "debug"
    assert main(["tune", str(space), "--debug", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "debug run (no Ray)" in out and "hyco train burgers_hybrid_quick_test" in out
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    spec = load_space(space)
    alpha = sample_params(spec)["trainer_params.alpha"]
    assert f"trainer_params.alpha={alpha}" in out


def test_searcher_tells_optuna_pruned_complete_and_fail_without_ray(tmp_path):
    """The PruningOptunaSearch bookkeeping alone (the real sweep is in test_sweep.py)."""
    import math

    import optuna

    from hyco_ray.runner.search import build_searcher

    spec = load_space(write_space(tmp_path, epochs=4))
    searcher = build_searcher(spec, f"sqlite:///{tmp_path}/study.db")
    for trial_id in ("stopped", "complete", "crashed", "diverged"):
        config = searcher.suggest(trial_id)
        assert set(config) == set(spec.space)
    for epoch in (1, 2):
        searcher.on_trial_result("stopped", {"val_loss": 1.0 / epoch, "epoch": epoch})
    # ASHA's stopping result never reaches on_trial_result, only on_trial_complete
    searcher.on_trial_complete("stopped", result={"val_loss": 0.4, "epoch": 3})
    for epoch in (1, 2, 3):
        searcher.on_trial_result("complete", {"val_loss": 0.1 * epoch, "epoch": epoch})
    searcher.on_trial_complete("complete", result={"val_loss": 0.05, "epoch": 4})
    searcher.on_trial_result("crashed", {"val_loss": 0.9, "epoch": 1})
    searcher.on_trial_complete("crashed", error=True)
    searcher.on_trial_complete("diverged", result={"val_loss": math.inf, "epoch": 1})

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/study.db")
    stopped, complete, crashed, diverged = study.trials
    assert stopped.state == optuna.trial.TrialState.PRUNED
    assert stopped.intermediate_values == {1: 1.0, 2: 0.5, 3: 0.4} and stopped.value == 0.4
    assert complete.state == optuna.trial.TrialState.COMPLETE and complete.value == 0.05
    assert complete.intermediate_values[4] == 0.05
    assert crashed.state == optuna.trial.TrialState.FAIL
    assert diverged.state == optuna.trial.TrialState.PRUNED and diverged.intermediate_values == {1: math.inf}


def test_a_missing_mlflow_package_names_the_extra(tmp_path, monkeypatch, capsys):
    """Issue 10 (trackers): the MLflow callback is an optional extra; without it, one line and exit 2."""
    import importlib.util

    from hyco_ray.cli import main

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    assert main(["tune", str(write_space(tmp_path)), "callbacks=[mlflow]", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "callbacks: mlflow needs the mlflow package" in err
    assert "pip install 'hyco-ray[mlflow]'" in err
    assert "unknown_tracker" in _bad(tmp_path, callbacks=["unknown_tracker"])


MO = {"val_loss_synthetic": "min", "val_loss_physical": "min"}


def test_multi_objective_space_loads_with_directions(tmp_path):
    """Issue 12: several objectives with modes; metric/mode stay the scalar of ASHA and the best trial."""
    spec = load_space(write_space(tmp_path, objectives=MO, searcher={"sampler": "nsga2"}))
    assert spec.multi_objective and spec.directions == ["minimize", "minimize"] and spec.metric == "val_loss"
    assert parse_space(spec.to_dict()).objectives == MO
    assert set(sample_params(spec)) == set(spec.space)
    shipped = load_space(SPACES / "burgers_pareto.yaml")
    assert list(shipped.objectives) == ["val_loss_synthetic", "val_loss_physical"] and shipped.metric == "val_loss"


def test_shipped_pbt_space_mutates_the_coupling_and_fits_two_cores():
    from hyco_ray.core.space import mutable_keys

    spec = load_space(SPACES / "burgers_pbt.yaml")
    assert spec.scheduler.type == "pbt" and spec.scheduler.perturbation_interval < spec.max_t
    assert {"trainer_params.alpha", "trainer_params.physical.max_iterations"} <= set(mutable_keys(spec))
    assert "trainer_params.warmup_epochs" in spec.space and "trainer_params.warmup_epochs" not in mutable_keys(spec)
    assert spec.max_concurrent == spec.num_samples and spec.num_samples * spec.resources.cpu <= 2


def test_multi_objective_mistakes_are_one_line_each(tmp_path, capsys):
    from hyco_ray.cli import main

    assert "objectives.val_loss_synthetc: is not a metric the trainer reports" in _bad(
        tmp_path, objectives={"val_loss_synthetc": "min", "val_loss_physical": "min"})
    assert "objectives.val_loss_physical: mode is 'minimise'" in _bad(
        tmp_path, objectives={"val_loss_synthetic": "min", "val_loss_physical": "minimise"})
    assert "needs at least 2" in _bad(tmp_path, objectives={"val_loss_physical": "min"})
    assert "searcher.sampler: nsga2 is multi-objective" in _bad(tmp_path, searcher={"sampler": "nsga2"})
    assert "searcher.sampler: cmaes takes one objective" in _bad(tmp_path, objectives=MO, searcher={"sampler": "cmaes"})
    path = write_space(tmp_path, objectives={"val_loss_synthetic": "min", "theta": "min"})
    assert main(["tune", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hyco: error:") and "objectives.theta" in err


def test_multi_objective_searcher_tells_values_complete_and_stopped_pruned(tmp_path):
    """An MO study takes no intermediate values: complete trials get their objectives' last values,
    stopped (ASHA) and diverged ones are PRUNED without values, so they stay off the front."""
    import math

    import optuna

    from hyco_ray.runner.search import build_searcher

    spec = load_space(write_space(tmp_path, epochs=4, objectives=MO))
    searcher = build_searcher(spec, f"sqlite:///{tmp_path}/study.db")
    for trial_id in ("stopped", "complete", "crashed", "diverged"):
        searcher.suggest(trial_id)
    row = {"val_loss": 0.3, "val_loss_synthetic": 0.2, "val_loss_physical": 0.01}
    for epoch in (1, 2):
        searcher.on_trial_result("stopped", {**row, "epoch": epoch})
    searcher.on_trial_complete("stopped", result={**row, "epoch": 3})
    searcher.on_trial_complete("complete", result={**row, "epoch": 4})
    searcher.on_trial_complete("crashed", error=True)
    searcher.on_trial_complete("diverged", result={"val_loss": math.inf, "epoch": 1})

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/study.db")
    assert len(study.directions) == 2
    stopped, complete, crashed, diverged = study.trials
    assert stopped.state == optuna.trial.TrialState.PRUNED and stopped.values is None
    assert stopped.intermediate_values == {} and stopped.user_attrs["last_values"] == [0.2, 0.01]
    assert complete.state == optuna.trial.TrialState.COMPLETE and complete.values == [0.2, 0.01]
    assert crashed.state == optuna.trial.TrialState.FAIL
    assert diverged.state == optuna.trial.TrialState.PRUNED and diverged.values is None
    assert study.best_trials == [complete]


@pytest.mark.parametrize("sampler, objectives", [("tpe", None), ("random", None), ("tpe", MO), ("nsga2", MO),
                                                 ("tpe-multivariate", None), ("tpe-multivariate", MO), ("gp", None),
                                                 ("cmaes", None)])
def test_searcher_pickles_and_restores_mid_sweep(tmp_path, sampler, objectives):
    """Tune pickles the searcher when a sweep starts and saves it for --resume (Optuna 5.1's NSGA-II
    sampler holds a thread lock): the copy goes on with the same study and the trials it awaits."""
    import ray.cloudpickle

    from hyco_ray.runner.search import build_searcher

    spec = load_space(write_space(tmp_path, objectives=objectives, searcher={"sampler": sampler, "seed": 0}))
    searcher = build_searcher(spec, None)
    first = searcher.suggest("a")
    copy = ray.cloudpickle.loads(ray.cloudpickle.dumps(searcher))
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = build_searcher(spec, None)
    restored.restore(str(tmp_path / "searcher.pkl"))
    for again in (copy, restored):
        assert list(again._trials) == ["a"] and again._trials["a"].params == first
        assert again.suggest("b").keys() == first.keys()


def test_trial_figures_is_best_or_all(tmp_path):
    """Issue 23: which trials draw figures/ (the sweep's pick at the end, or every complete trial)."""
    msg = _bad(tmp_path, trial_figures="some")
    assert "trial_figures" in msg and "best or all" in msg
    assert load_space(write_space(tmp_path, trial_figures="all")).trial_figures == "all"
