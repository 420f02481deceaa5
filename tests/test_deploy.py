"""The deployment files: the Kubernetes manifests validate against the schemas, and the Dockerfile lints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped]

from app.web.config import ROOT, usable_cores

BIN = Path(sys.executable).parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "kubernetes-validate"), "--strict", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_manifests_cover_deployment_service_and_autoscaler_and_validate() -> None:
    kinds = {p.name for p in MANIFESTS}
    assert {"deployment.yaml", "service.yaml", "hpa.yaml", "networkpolicy.yaml", "pdb.yaml", "ingress.yaml",
            "models-pvc.yaml", "ingress-upload.yaml", "redis-deployment.yaml", "redis-service.yaml",
            "redis-networkpolicy.yaml"} <= kinds  # fmt: skip
    for name in ("deployment.yaml", "redis-deployment.yaml"):  # no API token in a pod
        assert "automountServiceAccountToken: false" in (ROOT / "deploy/kubernetes" / name).read_text()
    result = validate(*MANIFESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(MANIFESTS)


def test_the_validator_rejects_a_wrong_type(tmp_path: Path) -> None:
    broken = tmp_path / "deployment.yaml"
    text = (ROOT / "deploy/kubernetes/deployment.yaml").read_text()
    broken.write_text(text.replace("replicas: 2", 'replicas: "two"'))
    result = validate(broken)
    assert result.returncode != 0
    assert "replicas" in result.stdout + result.stderr


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or str(BIN / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("cpu_max", "cap"),
    [("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", None), ("junk", None)],
)
def test_usable_cores_follow_a_container_cpu_limit(tmp_path: Path, cpu_max: str, cap: int | None) -> None:
    """A container limited to 2 CPUs on a 64-core host sizes its threads for 2, not 64 (cgroup v2 cpu.max)."""
    affinity = len(os.sched_getaffinity(0))
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert usable_cores(path) == (affinity if cap is None else min(affinity, cap))
    assert usable_cores(tmp_path / "absent") == affinity


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "deploy/kubernetes" / name).read_text())
    assert isinstance(data, dict)
    return data


def test_the_replicas_share_one_models_folder_and_take_the_admin_token_from_a_secret() -> None:
    pvc = load("models-pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    assert claims == {"models": pvc["metadata"]["name"]}
    server, zoo = pod["containers"][0], pod["initContainers"][0]
    env = {e["name"]: e for e in server["env"]}
    folder = env["UNROLLED_MODELS_DIR"]["value"]
    assert folder != "/app/models"  # not over the image's zoo: the shared volume, filled from it
    for container in (server, zoo):
        assert {"name": "models", "mountPath": folder} in container["volumeMounts"]
        assert container["image"] == server["image"] and container["securityContext"]["readOnlyRootFilesystem"]
    secret = env["UNROLLED_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert secret["optional"] is True and "value" not in env["UNROLLED_ADMIN_TOKEN"]  # no token in the manifests
    upload = load("ingress-upload.yaml")
    assert upload["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "64m"
    assert int(env["UNROLLED_MAX_UPLOAD_BYTES"]["value"]) == 64_000_000
    assert upload["spec"]["rules"][0]["http"]["paths"][0] == {
        "path": "/api/models",
        "pathType": "Exact",
        "backend": {"service": {"name": "unrolled", "port": {"name": "http"}}},
    }


def test_the_init_container_copies_the_zoo_without_touching_what_is_there(tmp_path: Path) -> None:
    """The init container's own script, run on a copy of a zoo: an empty folder gets every file; then an uploaded
    model and a changed file are left alone, and a model new in the image is added."""
    zoo = load("deployment.yaml")["spec"]["template"]["spec"]["initContainers"][0]
    script = zoo["command"][-1]
    src, dst = tmp_path / "image-zoo", tmp_path / "shared"
    (src / "checkpoints").mkdir(parents=True)
    for name in ("a.json", "a.safetensors", "checkpoints/a-0.safetensors"):
        (src / name).write_text(name)
    dst.mkdir()
    env = {**os.environ, "ZOO_DIR": str(src), "UNROLLED_MODELS_DIR": str(dst)}

    def run() -> list[str]:
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
        return sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())

    assert run() == ["a.json", "a.safetensors", "checkpoints/a-0.safetensors"]
    (dst / "up.json").write_text("uploaded")
    (dst / "a.json").write_text("kept")
    (src / "b.json").write_text("b.json")
    assert run() == ["a.json", "a.safetensors", "b.json", "checkpoints/a-0.safetensors", "up.json"]
    assert (dst / "a.json").read_text() == "kept" and (dst / "up.json").read_text() == "uploaded"


def test_the_replicas_share_the_rooms_through_the_redis_service_and_reach_nothing_else() -> None:
    """UNROLLED_REDIS_URL names the Redis Service's name and port, the Service selects the Redis pods on their
    port, and the network policies let the unrolled pods (and only them) reach it: egress goes to Redis and DNS."""
    server = load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    url = urlsplit({e["name"]: e for e in server["env"]}["UNROLLED_REDIS_URL"]["value"])
    service, redis = load("redis-service.yaml"), load("redis-deployment.yaml")
    port = next(p for p in service["spec"]["ports"] if p["port"] == url.port)
    assert url.scheme == "redis" and url.hostname == service["metadata"]["name"] and url.path == "/0"
    pod = redis["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert redis["spec"]["replicas"] == 1  # one Redis: every pod's PUBLISH reaches every pod's subscription
    (container,) = pod["spec"]["containers"]
    assert {"name": port["targetPort"], "containerPort": 6379} in container["ports"]
    assert "--save" in container["args"] and container["securityContext"]["readOnlyRootFilesystem"]

    app_labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    redis_policy = load("redis-networkpolicy.yaml")["spec"]
    assert redis_policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert redis_policy["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": app_labels}}], "ports": [{"protocol": "TCP", "port": 6379}]}
    ]
    assert redis_policy["egress"] == []
    egress = load("networkpolicy.yaml")["spec"]["egress"]
    to_redis, to_dns = egress
    assert to_redis["to"] == [{"podSelector": {"matchLabels": pod["metadata"]["labels"]}}]
    assert to_redis["ports"] == [{"protocol": "TCP", "port": 6379}]
    assert {p["port"] for p in to_dns["ports"]} == {53} and to_dns["to"][0]["podSelector"]["matchLabels"] == {
        "k8s-app": "kube-dns"
    }
