"""HYCO's coupling: per-model weights, the interaction set, turns, position-aware S, the objective."""

from __future__ import annotations

import pytest
import torch

from hyco.config import load_config
from hyco.models import make_model
from hyco.training import create_trainer
from hyco.training.losses import masked_nmse

HALF = ["data.observation.mask=region", "data.observation.region=[[0.0,0.5]]"]


def test_physical_step_sees_s_after_its_update(small_burgers):
    """In turns (Gauss-Seidel): the S whose rollouts P fits is the S after this epoch's S step."""
    trainer = create_trainer(small_burgers(*HALF, "trainer_params.warmup_epochs=0", "trainer_params.alpha_physical=0.5"))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    seen = {}
    original = trainer.train_physical

    def spy(alpha, interaction):
        seen["params"] = [p.detach().clone() for p in trainer.model.parameters()]
        return original(alpha, interaction)

    trainer.train_physical = spy
    metrics = trainer.run_epoch(0)
    assert metrics["physical_step"]
    after = list(trainer.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(seen["params"], after)), "P saw another S than the updated one"
    assert any(not torch.equal(a, b) for a, b in zip(seen["params"], before)), "S did not change before P's step"


def coupled_config(cache_dir: str, *overrides: str):
    return load_config("burgers_hybrid_quick_test", [
        f"data.cache_dir={cache_dir}", *HALF, "data.num_simulations=6", "data.num_steps=12",
        "trainer_params.train_sim=[0,1]", "trainer_params.val_sim=[2,3]", "trainer_params.test_sim=[4,5]",
        "trainer_params.num_predict_steps=3", "trainer_params.warmup_epochs=0", "trainer_params.num_random_ics=2",
        "model.synthetic.options.base_channels=8", *overrides,
    ])


def interaction_mismatch(trainer) -> float:
    """How far S's rollouts are from P's on the interaction region (fixed states)."""
    states = trainer.interaction_initial_states(99)
    with torch.no_grad():
        syn = trainer.synthetic_rollout(states, trainer.interaction_steps)
        phys = trainer.physical_rollout(states, trainer.interaction_steps)
    return float(masked_nmse(syn, phys, trainer.interaction_weights))


def test_interaction_pulls_s_toward_p(cache_dir):
    """alpha_S = 0: S's only loss is L_int against P (here at the truth), so S must move toward P
    on the unobserved half. Without the interaction term S would not change at all."""
    trainer = create_trainer(coupled_config(cache_dir, "trainer_params.alpha=0.0", "trainer_params.alpha_physical=1.0",
                                            "model.physical.params.viscosity.guess=[0.05]",
                                            "trainer_params.interleave_frequency=100"))
    torch.manual_seed(0)
    with torch.no_grad():  # an S that is visibly wrong, so there is something to learn from P
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    start = interaction_mismatch(trainer)
    trainer.run_epoch(0)
    trainer.run_epoch(1)
    assert interaction_mismatch(trainer) < 0.7 * start


def test_interaction_pulls_p_toward_s(cache_dir):
    """alpha_P = 0: P's only loss is L_int against S. An S that barely trains stays the identity
    map (the residual UNet starts there), i.e. "nothing changes", which P can only approach by
    lowering the viscosity. Without the interaction term theta would not move."""
    trainer = create_trainer(coupled_config(cache_dir, "trainer_params.alpha=1.0", "trainer_params.alpha_physical=0.0",
                                            "trainer_params.synthetic.learning_rate=1e-12"))
    guess = float(trainer.physical.theta[0])
    metrics = trainer.run_epoch(0)
    assert metrics["physical_step"]
    assert metrics["theta"][0] < 0.5 * guess


def test_full_observation_leaves_nothing_to_couple_on_the_unobserved_region(small_burgers):
    trainer = create_trainer(small_burgers("trainer_params.warmup_epochs=0"))
    assert trainer.interaction_weights is None  # every point observed: L_int has no region
    assert trainer.run_epoch(0)["coupled"] is False  # so alpha changes nothing (reported per epoch)
    everywhere = create_trainer(small_burgers("trainer_params.interaction_region=all"))
    assert everywhere.interaction_weights is not None and bool(everywhere.interaction_weights.all())
    half = create_trainer(small_burgers(*HALF, "trainer_params.warmup_epochs=1"))
    assert [half.run_epoch(e)["coupled"] for e in (0, 1)] == [False, True]  # warm-up, then L_int on


def test_fresh_random_states_only(small_burgers):
    trainer = create_trainer(small_burgers("trainer_params.interaction_observed_starts=false",
                                           "trainer_params.num_random_ics=3"))
    states = trainer.interaction_initial_states(0)
    assert states.shape[0] == 3
    assert not torch.equal(states, trainer.interaction_initial_states(1))  # drawn anew every epoch


def test_val_loss_is_the_geometric_mean_of_both_models_errors(small_burgers):
    metrics = create_trainer(small_burgers()).run_epoch(0)
    expected = (metrics["val_loss_synthetic"] * metrics["val_loss_physical"]) ** 0.5
    assert metrics["val_loss"] == pytest.approx(expected)
    alone = create_trainer(small_burgers("run_params.model_type=physical")).run_epoch(0)
    assert alone["val_loss"] == pytest.approx(alone["val_loss_physical"])


def test_an_exact_physical_model_does_not_zero_the_combined_objective(small_burgers):
    """On clean data P can match the val sims to round-off; S's error must still rank trials."""
    from hyco.training.hybrid import resolution_floor

    trainer = create_trainer(small_burgers())
    worse, better = (trainer.combined_loss({"loss_synthetic": s, "loss_physical": 0.0}) for s in (1e-2, 1e-3))
    assert 0 < better < worse
    assert worse == pytest.approx((1e-2 * resolution_floor(trainer.val.shape[3:])) ** 0.5)


@pytest.mark.parametrize("periodic", [True, False])
def test_position_input_breaks_translation_equivariance(periodic):
    """A plain UNet commutes with shifts (circular padding): it cannot place heat's bumps. With
    position channels it can tell places apart."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16)
    for position_input in (False, True):
        model = make_model("unet", ndim=2, channels=1, periodic=periodic, base_channels=4, depth=1,
                           residual=False, position_input=position_input)
        shifted = model(torch.roll(x, 4, dims=-1))  # a multiple of the pooling factor
        equivariant = torch.allclose(shifted, torch.roll(model(x), 4, dims=-1), atol=1e-5)
        if position_input:
            assert not equivariant
        elif periodic:
            assert equivariant


def test_heat_configs_use_position_input(cache_dir):
    cfg = load_config("heat_hybrid_quick_test", [f"data.cache_dir={cache_dir}"])
    assert cfg.model.synthetic.options["position_input"]
    assert not load_config("burgers_hybrid_quick_test", [f"data.cache_dir={cache_dir}"]).model.synthetic.options["position_input"]


def test_cosine_schedule_lowers_s_learning_rate_to_its_floor_by_the_last_epoch(small_burgers):
    trainer = create_trainer(small_burgers("trainer_params.epochs=5", "trainer_params.synthetic.lr_schedule=cosine",
                                           "trainer_params.synthetic.lr_floor=0.1"))
    lr = trainer.tp.synthetic.learning_rate
    rates = [trainer.learning_rate(e) for e in range(5)]
    assert rates[0] == pytest.approx(lr) and rates[-1] == pytest.approx(0.1 * lr)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    metrics = trainer.run_epoch(4)
    assert metrics["learning_rate"] == pytest.approx(0.1 * lr)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * lr)
    constant = create_trainer(small_burgers("trainer_params.epochs=5"))
    assert {constant.learning_rate(e) for e in range(5)} == {constant.tp.synthetic.learning_rate}
