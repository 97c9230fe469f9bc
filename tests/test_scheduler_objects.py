"""Schedulers and parameter types are small objects (hyco_ray.core.schedulers, hyco_ray.core.params): each checks
its own options, gives Optuna and Tune what they need and describes itself for ``--dry-run``; a new
one is one class and its registration, with no branch elsewhere to edit (issue 22)."""

from __future__ import annotations

import random

import optuna
import pytest
from sweep_util import write_space

from hyco.config.validate import BEST_METRICS, OBJECTIVE_METRICS
from hyco_ray.core import space as space_module
from hyco_ray.core.names import DIRECTIONS
from hyco_ray.core.params import PARAM_TYPES, ParamType, param_type
from hyco_ray.core.schedulers import SCHEDULERS, Scheduler, TunerSettings, scheduler_of
from hyco_ray.core.space import Param, SpaceError, load_space, sample_params

PBT = {"type": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5}
ENTRIES = {
    "uniform": Param(type="uniform", low=0.05, high=1.0),
    "loguniform": Param(type="loguniform", low=1e-4, high=1e-2),
    "int": Param(type="int", low=1, high=4),
    "int-log": Param(type="int", low=1, high=64, log=True),
    "choice": Param(type="choice", values=[1, 2, "all", None]),
}


def test_every_registered_type_and_scheduler_is_tested():
    assert PARAM_TYPES.names() == sorted({p.type for p in ENTRIES.values()})
    assert SCHEDULERS.names() == ["asha", "fifo", "pbt"]


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_optuna_samples_stay_inside_and_clip_is_the_identity_there(name):
    p = ENTRIES[name]
    assert p.kind.check(p) is None
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        value = study.ask({"x": p.distribution()}).params["x"]
        assert p.kind.contains(p, value), (name, value)
        assert p.kind.clip(p, value) == value
    assert all(p.kind.contains(p, v) for v in p.kind.extremes(p))


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_tune_samples_stay_inside_the_same_space(name):
    tune = pytest.importorskip("ray.tune")
    p = ENTRIES[name]
    domain, rng = p.kind.tune_domain(p, tune), random.Random(0)
    values = [domain.sample(random_state=rng.randrange(2**31)) for _ in range(40)]
    assert all(p.kind.contains(p, p.kind.coerce(v)) for v in values), (name, values)
    if name == "int":  # Tune's randint excludes high: the +1 must make it reachable
        assert {p.low, p.high} <= set(values), values


@pytest.mark.parametrize("name, outside, inside", [("uniform", 3.0, 1.0), ("int", 7.6, 4), ("int", -1, 1)])
def test_pbt_perturbation_is_moved_back_into_the_space(name, outside, inside):
    p = ENTRIES[name]
    assert not p.kind.contains(p, outside)
    assert p.kind.clip(p, outside) == inside and type(p.kind.clip(p, outside)) is type(inside)


@pytest.mark.parametrize("entry, field, message", [
    (Param(type="uniform", low=1.0, high=0.5), "", "must be < high"),
    (Param(type="loguniform", low=0.0, high=1.0), "low", "log scale needs low > 0"),
    (Param(type="int", low=0.5, high=3), "low", "must be an integer"),
    (Param(type="uniform", low=0.0, high=1.0, log=True), "log", "only `log: true|false` on type int"),
    (Param(type="uniform", low=0.0, high=1.0, values=[1]), "values", "not allowed for type uniform"),
    (Param(type="choice", values=[1, 1]), "values", "without repeats"),
    (Param(type="choice", values=[1], low=0), "", "not allowed for type choice"),
])
def test_each_type_names_its_own_mistake(entry, field, message):
    found, text = entry.kind.check(entry)
    assert found == field and message in text


def test_dry_run_descriptions_come_from_the_objects(tmp_path):
    from hyco_ray.runner.sweep import plan_text

    asha = load_space(write_space(tmp_path, epochs=8, scheduler={"type": "asha", "grace_period": 2}))
    pbt = load_space(write_space(tmp_path, name="p", epochs=4, scheduler=PBT))
    fifo = load_space(write_space(tmp_path, name="f", scheduler={"type": "fifo"}))
    assert scheduler_of(asha).describe(asha) == "ASHA: rungs after epochs 2, 4 of 8 (keeps the best 1/2)"
    assert scheduler_of(fifo).describe(fifo) == "none: every trial runs all 3 epochs"
    assert "PBT every 1 epochs" in scheduler_of(pbt).describe(pbt) and "trainer_params.alpha" in scheduler_of(pbt).describe(pbt)
    plan = plan_text(pbt)
    assert "Tune's random sampler (seed 0) draws the population" in plan and "searcher: optuna" not in plan
    assert "trainer_params.alpha: uniform [0.05, 1.0]" in plan and "max_iterations: int [1, 4]" in plan
    assert "searcher: optuna tpe (seed 0), study" in plan_text(asha)


def test_tuner_settings_of_each_scheduler(tmp_path):
    tune = pytest.importorskip("ray.tune")
    asha = load_space(write_space(tmp_path, epochs=8, scheduler={"type": "asha", "grace_period": 2}))
    pbt = load_space(write_space(tmp_path, name="p", epochs=4, scheduler=PBT))
    got = scheduler_of(asha).tuner_settings(asha, tune)
    assert isinstance(got.scheduler, tune.schedulers.ASHAScheduler) and got.search_alg is None
    assert got.max_concurrent_trials == asha.max_concurrent and got.param_space is None and got.num_to_keep == 2
    got = scheduler_of(pbt).tuner_settings(pbt, tune)
    assert isinstance(got.scheduler, tune.schedulers.PopulationBasedTraining)
    assert isinstance(got.search_alg, tune.search.BasicVariantGenerator) and got.max_concurrent_trials is None
    assert set(got.param_space) == set(pbt.space) and got.stop == {"epoch": 4} and got.num_to_keep is None


def test_a_new_scheduler_is_one_class_and_its_registration(tmp_path, monkeypatch):
    """A median-stopping scheduler registered here is checked, described and handed to the Tuner
    with nothing else edited."""
    tune = pytest.importorskip("ray.tune")

    class Median(Scheduler):
        name = "median"

        def check(self, spec):
            return None if spec.scheduler.grace_period >= 2 else ("scheduler.grace_period", "median needs >= 2")

        def describe(self, spec):
            return f"median stopping after {spec.scheduler.grace_period} epochs"

        def build(self, spec, tune):
            return tune.schedulers.MedianStoppingRule(time_attr="epoch", metric=spec.metric, mode=spec.mode,
                                                      grace_period=spec.scheduler.grace_period)

    monkeypatch.setitem(SCHEDULERS._entries, "median", Median)
    with pytest.raises(SpaceError, match="scheduler.grace_period: median needs >= 2"):
        load_space(write_space(tmp_path, scheduler={"type": "median", "grace_period": 1}))
    spec = load_space(write_space(tmp_path, scheduler={"type": "median", "grace_period": 2}))
    from hyco_ray.runner.sweep import plan_text

    assert "early stopping: median stopping after 2 epochs" in plan_text(spec)
    settings = scheduler_of(spec).tuner_settings(spec, tune)
    assert isinstance(settings, TunerSettings) and isinstance(settings.scheduler, tune.schedulers.MedianStoppingRule)


def test_a_new_parameter_type_is_one_class_and_its_registration(tmp_path, monkeypatch):
    """Uniform on a grid of ``step``-wide points (low, high and the step given as values): loaded,
    its bounds composed into the config, its default checked and its first trial sampled."""

    class Grid(ParamType):
        name = "grid"

        def check(self, p):
            return None if len(p.values) == 3 and p.values[0] < p.values[1] else ("values", "is [low, high, step]")

        def points(self, p):
            low, high, step = p.values
            return [round(low + i * step, 10) for i in range(int(round((high - low) / step)) + 1)]

        def distribution(self, p):
            return optuna.distributions.CategoricalDistribution(tuple(self.points(p)))

        def extremes(self, p):
            return [self.points(p)[0], self.points(p)[-1]]

        def contains(self, p, value):
            return value in self.points(p)

    monkeypatch.setitem(PARAM_TYPES._entries, "grid", Grid)
    with pytest.raises(SpaceError, match="space.trainer_params.alpha: the default 0.5 .* is outside the space grid"):
        load_space(write_space(tmp_path, space={"trainer_params.alpha": {"type": "grid", "values": [0.1, 0.4, 0.1]}}))
    spec = load_space(write_space(tmp_path, space={"trainer_params.alpha": {"type": "grid", "values": [0.1, 0.5, 0.1]}}))
    assert spec.defaults == {"trainer_params.alpha": 0.5}
    assert sample_params(spec, seed=1)["trainer_params.alpha"] in Grid().points(spec.space["trainer_params.alpha"])
    with pytest.raises(SpaceError, match=r"space.trainer_params.alpha.values: is \[low, high, step\]"):
        load_space(write_space(tmp_path, space={"trainer_params.alpha": {"type": "grid", "values": [0.5, 0.1]}}))


@pytest.mark.parametrize("mode", ["min", "max"])
def test_min_and_max_map_to_optunas_directions_in_one_place(tmp_path, mode):
    from hyco_ray.runner.search import build_searcher

    spec = load_space(write_space(tmp_path, mode=mode, metric="val_loss_synthetic"))
    assert spec.directions == [DIRECTIONS[mode]]
    searcher = build_searcher(spec, storage_url=None)
    assert [d.name.lower() for d in searcher._study.directions] == [DIRECTIONS[mode]]


def test_the_sweep_metrics_are_the_config_layers_one_list():
    assert space_module.METRICS is OBJECTIVE_METRICS and set(BEST_METRICS) <= set(OBJECTIVE_METRICS)
    assert param_type("uniform").describe(ENTRIES["uniform"]) == "uniform [0.05, 1.0]"
