"""The deployment files: the Kubernetes manifests validate against the schemas, and the Dockerfile lints."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from app.config import ROOT

BIN = Path(sys.executable).parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "kubernetes-validate"), "--strict", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_manifests_cover_deployment_service_and_autoscaler_and_validate() -> None:
    kinds = {p.name for p in MANIFESTS}
    assert {"deployment.yaml", "service.yaml", "hpa.yaml"} <= kinds
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
