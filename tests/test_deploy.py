"""The deployment files: the Kubernetes manifests validate against the schemas, and the Dockerfile lints."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ROOT, usable_cores

BIN = Path(sys.executable).parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "kubernetes-validate"), "--strict", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_manifests_cover_deployment_service_and_autoscaler_and_validate() -> None:
    kinds = {p.name for p in MANIFESTS}
    assert {"deployment.yaml", "service.yaml", "hpa.yaml", "networkpolicy.yaml", "pdb.yaml", "ingress.yaml"} <= kinds
    deployment = (ROOT / "deploy/kubernetes/deployment.yaml").read_text()
    assert "automountServiceAccountToken: false" in deployment  # no API token in a public-facing pod
    assert "egress: []" in (ROOT / "deploy/kubernetes/networkpolicy.yaml").read_text()  # it calls nothing
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


def test_dockerfile_runs_as_non_root_with_a_healthcheck_and_the_lock() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001:10001" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert "-c requirements.lock" in text


def test_the_image_pins_its_base_and_keeps_compiled_code_and_metrics_from_the_server() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim@sha256:[0-9a-f]{64}$", text, re.M)
    # The kernel cache is root's (no --chown to the server's user) and not writable by group or others.
    assert re.search(r"^COPY --from=build /opt/numba-cache /opt/numba-cache$", text, re.M)
    assert "go-w /app /opt/numba-cache" in text
    assert "UNROLLED_METRICS_PORT=9100" in text
    deployment = (ROOT / "deploy/kubernetes/deployment.yaml").read_text()
    assert "NUMBA_CACHE_DIR" not in deployment  # the image's read-only cache, not a writable copy in /tmp


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
