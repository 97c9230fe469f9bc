"""A real two-node Ray cluster on this machine: a CPU head and a worker advertising 2 fake GPUs.

Trials asking for 0.5 GPU must land on the worker, two per GPU, see their GPU in
CUDA_VISIBLE_DEVICES, fall back to the CPU (torch sees no GPU here) and complete.
"""

from __future__ import annotations

from collections import Counter

import pytest

ray = pytest.importorskip("ray")

from sweep_util import write_space  # noqa: E402

from hyco_ray.core.space import load_space  # noqa: E402
from hyco_ray.core.sweep_dir import load_sweep  # noqa: E402
from hyco_ray.runner.sweep import run_sweep  # noqa: E402

MB = 1024**2


@pytest.fixture
def cluster(monkeypatch):
    from ray.cluster_utils import Cluster

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # conftest hides GPUs; this cluster fakes two

    # each raylet would claim the whole machine's memory: give every node a small share
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": 80 * MB, "memory": 2048 * MB})
    worker = c.add_node(num_cpus=2, num_gpus=2, object_store_memory=80 * MB, memory=4096 * MB)
    c.wait_for_nodes()
    try:
        yield c, worker
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.mark.slow
def test_fractional_gpu_trials_land_two_per_gpu_on_the_gpu_node(cluster, tmp_path):
    head, worker = cluster
    space = write_space(
        tmp_path, cache_dir=tmp_path / "cache", epochs=3, name="gpu", num_samples=4, max_concurrent=4,
        resources={"cpu": 0.5, "gpu": 0.5},
    )
    spec = load_space(space)
    outcome = run_sweep(spec, address=head.address)  # like hyco tune --address (or RAY_ADDRESS)
    assert outcome.finished
    assert not ray.is_initialized()  # the driver disconnected ...
    assert len([n for n in head.list_all_nodes() if n.remaining_processes_alive()]) == 2  # ... the cluster lives on

    sweep = load_sweep(outcome.experiment_dir)
    assert len(sweep.trials) == 4
    assert [t.outcome(spec.max_t) for t in sweep.trials] == ["complete"] * 4
    for t in sweep.trials:
        row = t.final
        assert row["node_id"] == worker.node_id, "a GPU trial ran on the CPU-only head"
        assert row["cuda_visible_devices"] in ("0", "1")
        assert row["gpu_ids"] == row["cuda_visible_devices"]
        assert row["device"] == "cpu"  # torch sees no GPU here: CPU fallback
        assert row["num_threads"] == 1  # 0.5 CPU -> one torch thread
        assert {r["cuda_visible_devices"] for r in t.history} == {row["cuda_visible_devices"]}
    per_gpu = Counter(t.final["cuda_visible_devices"] for t in sweep.trials)
    assert sorted(per_gpu.values()) == [2, 2], per_gpu
