"""A trial's sampled settings reach its config as the typed values they are (issue 22): no trip through
``key=value`` text where a typed path exists, the whole config validated once, and the same config
``hyco train`` composes from the overrides that rerun the trial. ``physical.alpha`` moved to
``trainer_params.alpha_physical``, beside ``alpha``, where the coupling reads both."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sweep_util import HALF_OBSERVED, SMALL, write_space

import hyco.config.load
import hyco_ray.core.space
from hyco.config import config_to_dict, load_config, load_config_file, with_values
from hyco.errors import ConfigError
from hyco_ray.cli import main
from hyco_ray.core.space import SpaceError, load_space, sample_params

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
MIXED = {  # a float, an int, a string-or-list choice, P's weight under its new key, and a config group
    "trainer_params.alpha": {"type": "uniform", "low": 0.05, "high": 1.0},
    "trainer_params.alpha_physical": {"type": "uniform", "low": 0.5, "high": 1.0},
    "trainer_params.physical.max_iterations": {"type": "int", "low": 1, "high": 4},
    "trainer_params.interaction_region": {"type": "choice", "values": ["unobserved", "all"]},
    "model/synthetic": {"type": "choice", "values": ["unet", "resnet"]},
}
#: the network's own options differ between unet and resnet: leave them at each one's defaults
ANY_NETWORK = ["trainer_params.epochs=3", *(o for o in SMALL if "synthetic.options" not in o), *HALF_OBSERVED]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_typed_config_is_the_one_the_rerun_command_composes(tmp_path, seed):
    spec = load_space(write_space(tmp_path, space=MIXED, overrides=ANY_NETWORK))
    params = sample_params(spec, seed=seed)
    typed = spec.trial_config(params)
    assert config_to_dict(typed) == config_to_dict(load_config(spec.base, spec.trial_overrides(params)))
    assert typed.trainer_params.alpha_physical == params["trainer_params.alpha_physical"]
    assert type(typed.trainer_params.physical.max_iterations) is int


def test_sampled_values_never_become_override_text(tmp_path, monkeypatch):
    """Only a config group (it names a file) is composed from text; every other value is set as is."""
    spec = load_space(write_space(tmp_path, space={k: v for k, v in MIXED.items() if "/" not in k}))
    params = sample_params(spec, seed=3)

    def no_text(value):
        raise AssertionError(f"{value!r} went through override text")

    monkeypatch.setattr(hyco_ray.core.space, "override_value", no_text)
    cfg = spec.trial_config(params)
    assert cfg.trainer_params.alpha == params["trainer_params.alpha"]


def test_a_trial_config_is_validated_once(tmp_path, monkeypatch):
    spec = load_space(write_space(tmp_path, space={k: v for k, v in MIXED.items() if "/" not in k}))
    params, calls = sample_params(spec, seed=4), []
    real = hyco.config.load.validate

    def counted(cfg):
        calls.append(cfg.trainer_params.alpha)
        real(cfg)

    monkeypatch.setattr(hyco.config.load, "validate", counted)
    monkeypatch.setattr(hyco_ray.core.space, "validate", counted)
    spec.trial_config(params)
    assert calls == [params["trainer_params.alpha"]]  # the composed base is not checked on its own first


def test_with_values_checks_each_key_and_type():
    cfg = load_config("burgers_hybrid_quick_test")
    assert with_values(cfg, {"trainer_params.physical.max_iterations": 2}).trainer_params.physical.max_iterations == 2
    with pytest.raises(ConfigError, match="max_iterations: Value '2.5' of type 'float' could not be converted"):
        with_values(cfg, {"trainer_params.physical.max_iterations": 2.5})
    with pytest.raises(ConfigError, match="trainer_params.alpah: no such key"):
        with_values(cfg, {"trainer_params.alpah": 0.5})


def test_p_s_weight_lives_beside_s_s_where_the_coupling_reads_it():
    from hyco.config.schema import SCHEDULABLE, PhysicalTrainerConfig, TrainerParams

    assert "alpha" not in PhysicalTrainerConfig.__dataclass_fields__
    assert {"alpha", "alpha_physical"} <= set(TrainerParams.__dataclass_fields__) and "alpha_physical" in SCHEDULABLE
    cfg = load_config("burgers_hybrid_quick_test", ["trainer_params.alpha_physical=0.7"])
    assert cfg.trainer_params.alpha_physical == 0.7


def test_the_old_key_is_one_line_naming_the_new_one(tmp_path, capsys):
    new = "trainer_params.physical.alpha is now trainer_params.alpha_physical"
    with pytest.raises(ConfigError, match=new):
        load_config("burgers_hybrid_quick_test", ["trainer_params.physical.alpha=0.9"])
    old_file = tmp_path / "old.yaml"  # a config exported before the move
    data = config_to_dict(load_config("burgers_hybrid_quick_test"))
    data["trainer_params"]["physical"]["alpha"] = 0.9
    old_file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=new):
        load_config_file(old_file)
    with pytest.raises(SpaceError, match=f"space.trainer_params.physical.alpha: .*{new}"):
        load_space(write_space(tmp_path, space={"trainer_params.physical.alpha": {"type": "uniform", "low": 0.5,
                                                                                   "high": 1.0}}))
    assert main(["train", "burgers_hybrid_quick_test", "trainer_params.physical.alpha=0.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hyco: error:") and err.count("\n") == 1 and new in err, err


@pytest.mark.parametrize("name", ["burgers_quick", "burgers_pbt", "burgers_pareto"])
def test_shipped_spaces_search_the_new_key(name):
    spec = load_space(SPACES / f"{name}.yaml")
    assert "trainer_params.alpha_physical" in spec.space
    assert spec.trial_config(sample_params(spec, seed=0)).trainer_params.alpha_physical <= 1.0
