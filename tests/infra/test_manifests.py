"""Infra YAMLs: validated against their schema where one ships here, else parsed and checked for the keys used."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_cluster_launcher_matches_rays_schema():
    import ray.autoscaler
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    (config,) = load(INFRA / "ray" / "cluster-aws.yaml")
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]
    assert any("gpu" in name for name in config["available_node_types"])


def test_runtime_env_is_accepted_by_ray():
    from ray.runtime_env import RuntimeEnv
    (env,) = load(INFRA / "runtime_env.yaml")
    RuntimeEnv(**env)
    pins = {p.split("==")[0]: p for p in env["pip"]["packages"]}
    assert pins["torch"] == "torch==2.14.1" and "faiss-cpu" in pins


def _entrypoint_files(entrypoint: str) -> list[str]:
    return [w for w in shlex.split(entrypoint) if w.endswith((".py", ".yaml")) and not w.startswith("s3://")]


@pytest.mark.parametrize("job", ["train", "embed", "index"])
def test_rayjobs_reference_real_entry_points(job):
    (doc,) = load(INFRA / "kuberay" / f"rayjob-{job}.yaml")
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    assert spec["clusterSelector"]["ray.io/cluster"] == "spacessl"
    yaml.safe_load(spec["runtimeEnvYAML"])
    files = _entrypoint_files(spec["entrypoint"])
    assert files and all((ROOT / f).exists() for f in files), files


def test_raycluster_has_gpu_workers_and_dashboard():
    (doc,) = load(INFRA / "kuberay" / "raycluster.yaml")
    assert doc["kind"] == "RayCluster" and doc["metadata"]["name"] == "spacessl"
    head = doc["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert {6379, 8265} <= ports
    gpu = [g for g in doc["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu"][0]
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1


def test_mlflow_server_uses_postgres_and_object_store():
    (compose,) = load(INFRA / "mlflow" / "docker-compose.yaml")
    assert {"postgres", "minio", "mlflow"} <= set(compose["services"])
    cmd = compose["services"]["mlflow"]["command"]
    assert "postgresql://" in cmd and "s3://" in cmd
    docs = load(INFRA / "mlflow" / "k8s.yaml")
    kinds = {d["kind"] for d in docs}
    assert kinds == {"Deployment", "Service"}
    dep = [d for d in docs if d["kind"] == "Deployment"][0]
    args = " ".join(dep["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--backend-store-uri" in args and "s3://" in args
