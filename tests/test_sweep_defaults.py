"""The base config's own values are a sweep's first trial (issue 19): the summary and report always
show the best trial against the defaults; a space that excludes a default is a one-line error."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

from omegaconf import OmegaConf  # noqa: E402
from sweep_util import BASE_SPACE, write_space  # noqa: E402

from hyco.config import config_to_dict, load_config  # noqa: E402
from hyco_ray.core.analysis import summary_text, trials_table  # noqa: E402
from hyco_ray.core.space import SpaceError, load_space  # noqa: E402
from hyco_ray.core.sweep_dir import load_sweep  # noqa: E402
from hyco_ray.runner.sweep import run_sweep  # noqa: E402


def test_the_spec_holds_the_base_configs_values_of_the_searched_keys(tmp_path):
    spec = load_space(write_space(tmp_path))
    base = load_config(spec.base, spec.trial_overrides({}))
    assert spec.defaults == {"trainer_params.alpha": base.trainer_params.alpha,
                             "trainer_params.physical.max_iterations": base.trainer_params.physical.max_iterations}


@pytest.mark.parametrize("key, dist, shown", [
    ("trainer_params.alpha", {"type": "uniform", "low": 0.6, "high": 0.9}, "uniform [0.6, 0.9]"),
    ("trainer_params.physical.max_iterations", {"type": "int", "low": 4, "high": 8}, "int [4, 8]"),
    ("trainer_params.interleave_frequency", {"type": "choice", "values": [2, 4]}, "[2, 4]"),
])
def test_a_default_outside_the_space_is_a_one_line_error(tmp_path, key, dist, shown):
    space = {**json.loads(json.dumps(BASE_SPACE["space"])), key: dist}
    base = OmegaConf.create(config_to_dict(load_config(BASE_SPACE["base"], [])))
    default = OmegaConf.select(base, key)
    with pytest.raises(SpaceError) as err:
        load_space(write_space(tmp_path, space=space))
    msg = str(err.value)
    assert "\n" not in msg and f"space.{key}" in msg and f"the default {default!r}" in msg and shown in msg


@pytest.mark.slow
def test_the_defaults_are_the_first_trial(tmp_path):
    """A real tiny sweep (TPE, 3 trials, one at a time): its first trial runs the defaults, marked in
    its rows, in the Optuna study and in the trials table; the summary shows best vs defaults."""
    spec = load_space(write_space(tmp_path, cache_dir=tmp_path / "cache", epochs=2, num_samples=3, max_concurrent=1,
                                  searcher={"type": "optuna", "sampler": "tpe", "seed": 3, "n_startup_trials": 1,
                                            "storage": "auto"}))
    outcome = run_sweep(spec, num_cpus=2)
    sweep = load_sweep(outcome.experiment_dir)
    study = sweep.study()
    assert study.trials[0].params == spec.defaults and len(study.trials) == spec.num_samples
    first = next(t for t in sweep.trials if t.trial_id == study.trials[0].user_attrs["ray_trial_id"])
    assert first.params == spec.defaults
    assert sweep.defaults_trial() is first and all(r["defaults"] for r in first.history)
    assert not any(r.get("defaults") for t in sweep.trials if t is not first for r in t.history)
    table = trials_table(sweep)
    assert table.defaults.sum() == 1 and table[table.defaults].trial_id.item() == first.trial_id
    text = summary_text(sweep)
    best = sweep.best()
    assert f"defaults trial: {first.trial_id}" in text
    assert f"best / defaults: val_loss {best.value('val_loss') / first.value('val_loss'):.3g}" in text
