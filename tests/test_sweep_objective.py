"""The combined objective when P is exact to round-off (issue 19's last point), in miniature: full
clean Burgers data, alpha_P 0.9, interaction on ``all`` points against ``unobserved`` (none, on full
data). P's val error is far below the grid's resolution floor either way; the combined ``val_loss``
must then rank the two by S's error, not by P's round-off."""

from __future__ import annotations

import math

from hyco.training import create_trainer
from hyco.training.hybrid import resolution_floor


def test_the_ranking_follows_s_when_p_is_at_round_off(small_burgers):
    runs = {}
    for region in ("all", "unobserved"):
        trainer = create_trainer(small_burgers(
            "trainer_params.epochs=6", "trainer_params.warmup_epochs=0", "trainer_params.alpha_physical=0.9",
            "trainer_params.physical.max_iterations=10", "trainer_params.num_random_ics=2", "run_params.seed=1",
            f"trainer_params.interaction_region={region}"))
        runs[region] = trainer.train()
    floor = resolution_floor(trainer.val.shape[3:])
    s = {k: r["val_loss_synthetic"] for k, r in runs.items()}
    p = {k: r["val_loss_physical"] for k, r in runs.items()}
    assert max(p.values()) < floor < min(s.values()), (p, s, floor)  # the case: P exact on this grid
    assert p["unobserved"] < p["all"]  # ... and P's round-off differs between the two settings
    by_s = sorted(runs, key=s.get)
    assert sorted(runs, key=lambda k: runs[k]["val_loss"]) == by_s
    for r in runs.values():
        assert math.isclose(r["val_loss"], math.sqrt(r["val_loss_synthetic"] * floor), rel_tol=1e-12)
    # the scale-free mean of the raw errors (the old objective) would have let P's round-off decide
    raw = {k: math.sqrt(s[k] * p[k]) for k in runs}
    assert sorted(runs, key=raw.get) == sorted(runs, key=p.get)
