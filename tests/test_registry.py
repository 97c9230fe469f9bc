"""The one registry: register, build by name, unknown names and options as ConfigErrors."""

from __future__ import annotations

import pytest

from hyco.config.schema import PhysicalTrainerConfig, RunConfig
from hyco.errors import ConfigError
from hyco.registry import METRICS, MODELS, OPTIMIZERS, PROBLEMS, TRAINERS, Registry


def test_register_build_and_names():
    things = Registry("thing", "a.name", "a.options")

    @things.register("double")
    def double(x, factor=2):
        return x * factor

    assert things.names() == ["double"] and "double" in things
    assert things.build("double", 3) == 6 and things.build("double", 3, factor=3) == 9
    assert things.get("double") is double


def test_unknown_name_lists_the_known_ones():
    things = Registry("thing", "a.name")
    things.register("one")(lambda: 1)
    with pytest.raises(ConfigError, match=r"a.name is 'two', but must be one of \['one'\]"):
        things.build("two")


def test_unknown_option_names_the_options_key():
    things = Registry("thing", "a.name", "a.options")
    things.register("one")(lambda width=1: width)
    with pytest.raises(ConfigError, match=r"a.options: .*'depth'.*accepts \['width'\]"):
        things.build("one", depth=2)


def test_a_name_is_registered_once():
    things = Registry("thing", "a.name")
    things.register("one")(len)
    things.register("one")(len)  # the same entry again (a module imported twice) is fine
    with pytest.raises(ValueError, match="already registered"):
        things.register("one")(abs)


def test_builtins_are_registered():
    assert {"burgers", "heat", "smoke", "gray_scott"} <= set(PROBLEMS.names())
    assert {"unet", "resnet"} <= set(MODELS.names())
    assert {"hybrid", "synthetic", "physical"} <= set(TRAINERS.names())
    assert {"adam", "adamw"} <= set(OPTIMIZERS.names())
    assert "relative_l2" in METRICS.names()


def test_config_built_in_code_suppresses_the_iteration_cap():
    """The schema's default agrees with every shipped YAML: the L-BFGS cap is not an error."""
    assert PhysicalTrainerConfig().suppress_convergence_errors
    assert RunConfig().trainer_params.physical.suppress_convergence_errors
