"""Offline checks of ``cluster.yaml`` (the ``ray up`` cluster definition).

The file is validated with Ray's own autoscaler code, the same steps
``ray up`` runs in ``ray.autoscaler._private.commands._bootstrap_config``
before it talks to the cloud:

1. ``jsonschema`` against ``ray/autoscaler/ray-schema.json`` on the file as
   written (the schema requires ``cluster_name``/``provider`` and rejects
   unknown keys);
2. ``ray.autoscaler._private.util.prepare_config``: merges the AWS
   ``defaults.yaml`` shipped inside Ray, merges the setup commands and fills in
   per-node-type worker counts (pure file/dict work, no boto3);
3. ``ray.autoscaler._private.util.validate_config``: schema again on the
   merged config plus Ray's cross-field checks (head type, min/max workers).

``_bootstrap_config`` then calls the AWS provider's
``fillout_available_node_types_resources`` and ``bootstrap_config``; both call
AWS through boto3, so they are deliberately not used here. An autouse fixture
makes any network connection attempt fail the test.
"""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import ray.autoscaler as ray_autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO_ROOT / "cluster.yaml"
SCHEMA_PATH = Path(ray_autoscaler.__file__).with_name("ray-schema.json")
PROJECT_REMOTE_PATH = "~/hyco-ray"
TOKEN_REMOTE_PATH = "~/.ray/auth_token"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything (e.g. boto3) tries to reach the network."""

    def _refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)


def load_raw() -> dict[str, Any]:
    with CLUSTER_YAML.open() as f:
        raw = yaml.safe_load(f)
    assert isinstance(raw, dict), "cluster.yaml must be a mapping"
    return raw


def ray_schema() -> dict[str, Any]:
    with SCHEMA_PATH.open() as f:
        return json.load(f)


def check_cluster_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate like ``ray up`` does up to (excluding) the cloud calls.

    Returns the prepared (defaults-merged) config. Raises
    ``jsonschema.ValidationError`` for schema violations and ``ValueError``
    for Ray's cross-field checks.
    """
    raw = copy.deepcopy(raw)
    # The file as written: required keys, types, no unknown keys.
    jsonschema.validate(raw, ray_schema())
    # What `ray up` does next: merge provider defaults, then validate.
    prepared = prepare_config(raw)
    validate_config(prepared)
    return prepared


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_raw()


@pytest.fixture(scope="module")
def prepared(raw: dict[str, Any]) -> dict[str, Any]:
    return check_cluster_config(raw)


def _head(cfg: dict[str, Any]) -> dict[str, Any]:
    return cfg["available_node_types"][cfg["head_node_type"]]


def _workers(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in cfg["available_node_types"].items() if name != cfg["head_node_type"]}


# --------------------------------------------------------------------------
# The real file
# --------------------------------------------------------------------------


def test_cluster_yaml_validates_with_ray_checks(prepared: dict[str, Any]) -> None:
    assert prepared["cluster_name"] == "hyco-ray"
    assert prepared["provider"]["type"] == "aws"
    assert prepared["provider"]["region"]
    assert prepared["auth"]["ssh_user"] == "ubuntu"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_head_node_runs_no_trials(raw: dict[str, Any], prepared: dict[str, Any]) -> None:
    head = _head(prepared)
    # 0 CPUs (and no GPU) advertised: Tune cannot place a trial on the head.
    assert head["resources"].get("CPU") == 0
    assert head["resources"].get("GPU", 0) == 0
    # The head type is never launched as an extra worker.
    assert head["max_workers"] == 0
    # The start command says the same explicitly.
    start = " ".join(raw["head_start_ray_commands"])
    assert "--head" in start
    assert "--num-cpus=0" in start
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in start


def test_gpu_workers_autoscale(prepared: dict[str, Any]) -> None:
    assert prepared["max_workers"] > 0
    workers = _workers(prepared)
    assert workers, "at least one worker node type is needed"
    gpu_workers = {n: s for n, s in workers.items() if s["resources"].get("GPU", 0) >= 1}
    assert gpu_workers, "a worker node type must advertise GPUs"
    for name, spec in gpu_workers.items():
        assert spec["resources"].get("CPU", 0) >= 1, name
        assert spec["min_workers"] == 0, f"{name}: should scale down to zero"
        assert 0 < spec["max_workers"] <= prepared["max_workers"], name
        assert spec["node_config"]["InstanceType"], name


def test_worker_start_joins_head(raw: dict[str, Any]) -> None:
    start = " ".join(raw["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6379" in start
    assert "--port=6379" in " ".join(raw["head_start_ray_commands"])


def test_setup_installs_project_on_every_node(raw: dict[str, Any], prepared: dict[str, Any]) -> None:
    # The working tree is shipped with file_mounts ...
    assert raw["file_mounts"].get(PROJECT_REMOTE_PATH) == "."
    assert ".venv" in raw.get("rsync_exclude", [])
    # ... and installed from that copy by a setup command.
    installs = [c for c in raw["setup_commands"] if "pip install" in c and PROJECT_REMOTE_PATH in c]
    assert installs, "a setup command must `pip install` the project from ~/hyco-ray"
    # prepare_config merges setup_commands into head and worker setup.
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert any(PROJECT_REMOTE_PATH in c for c in prepared[key]), key
    # The head runs the autoscaler, which needs boto3 on AWS.
    assert any("boto3" in c for c in prepared["head_setup_commands"])


def test_setup_pins_local_ray_version(raw: dict[str, Any]) -> None:
    # Cluster and local `ray` CLI must run the same Ray version.
    pins = [c for c in raw["setup_commands"] if "ray[" in c and "==" in c]
    assert pins, "setup_commands must pin the Ray version"
    assert all(f"=={ray.__version__}" in c for c in pins), pins


def test_shared_storage_configured(raw: dict[str, Any]) -> None:
    storage = raw["metadata"]["storage_path"]
    assert storage.startswith(("s3://", "/mnt/")), storage
    assert not storage.startswith("~"), "storage must be shared, not node-local"


def test_token_auth_on_every_node(raw: dict[str, Any]) -> None:
    from ray._private.authentication.authentication_token_setup import (
        AUTH_MODE_ENV_VAR,
        _get_default_token_path,
    )

    # Use the variable name and default token path Ray itself reads.
    assert AUTH_MODE_ENV_VAR == "RAY_AUTH_MODE"
    assert _get_default_token_path() == Path.home() / ".ray" / "auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in raw[key] if "ray start" in c]
        assert start and all(f"{AUTH_MODE_ENV_VAR}=token" in c for c in start), key
    # The token file is shipped to Ray's default path on every node.
    assert raw["file_mounts"].get(TOKEN_REMOTE_PATH) == TOKEN_REMOTE_PATH


# --------------------------------------------------------------------------
# Broken copies must fail, naming the offending key
# --------------------------------------------------------------------------


def _without_provider(cfg: dict[str, Any]) -> None:
    del cfg["provider"]


def _max_workers_wrong_type(cfg: dict[str, Any]) -> None:
    cfg["max_workers"] = "many"


def _unknown_top_level_key(cfg: dict[str, Any]) -> None:
    # A plausible mistake: Tune's storage path is not a cluster-launcher key.
    cfg["storage_path"] = "s3://bucket/hyco"


def _head_resources_fractional(cfg: dict[str, Any]) -> None:
    _head(cfg)["resources"] = {"CPU": 0.5}


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (_without_provider, "provider"),
        (_max_workers_wrong_type, "max_workers"),
        (_unknown_top_level_key, "storage_path"),
        (_head_resources_fractional, "CPU"),
    ],
    ids=["missing-provider", "max_workers-wrong-type", "unknown-key", "fractional-cpu"],
)
def test_broken_copy_fails_naming_key(raw: dict[str, Any], mutate: Any, key: str) -> None:
    broken = copy.deepcopy(raw)
    mutate(broken)
    with pytest.raises(jsonschema.ValidationError) as excinfo:
        check_cluster_config(broken)
    err = excinfo.value
    # The message (or the path to the bad value) names the key.
    assert key in err.message or key in list(err.absolute_path), (
        err.message,
        list(err.absolute_path),
    )
    assert key in str(err)


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (_max_workers_wrong_type, "max_workers"),
        (_unknown_top_level_key, "storage_path"),
    ],
    ids=["max_workers-wrong-type", "unknown-key"],
)
def test_ray_up_path_alone_rejects(raw: dict[str, Any], mutate: Any, key: str) -> None:
    """Ray's prepare_config + validate_config alone (no schema step) reject these."""
    broken = copy.deepcopy(raw)
    mutate(broken)
    with pytest.raises(jsonschema.ValidationError) as excinfo:
        validate_config(prepare_config(broken))
    assert key in str(excinfo.value)


def test_unknown_head_node_type_fails(raw: dict[str, Any]) -> None:
    broken = copy.deepcopy(raw)
    broken["head_node_type"] = "ray.head.missing"
    with pytest.raises(ValueError, match="head_node_type"):
        check_cluster_config(broken)


def test_min_workers_above_global_max_fails(raw: dict[str, Any]) -> None:
    broken = copy.deepcopy(raw)
    worker_name = next(iter(_workers(broken)))
    broken["available_node_types"][worker_name]["min_workers"] = broken["max_workers"] + 1
    with pytest.raises(ValueError, match="max_workers"):
        check_cluster_config(broken)
