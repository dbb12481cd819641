"""The rendered Kubernetes manifests run: `podman kube play` of the example overlay's Deployments links a record.

podman is not a cluster, so the rendered YAML is adapted where podman 4.3 differs, and only there: the pods use
the host's network (no Services), the Secret's files come from a host folder (podman 4.3 mounts a Secret's
values still base64-encoded), and the Namespace, Service, PodDisruptionBudgets and autoscaler are left out.
Everything else runs as rendered: the image, probes, ConfigMaps (settings and the rules file), the read-only
root filesystem with its /tmp volume, the non-root user and the NAME_FILE secrets.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.image.conftest import API_TOKEN, FIGURES, HUBSPOT_TOKEN, Deployment, Engine
from tests.support.processes import REPO, free_port, wait_for

OVERLAY = REPO / "deploy" / "kubernetes" / "overlays" / "example"
LEFT_OUT = {"Namespace", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Secret"}


def rendered() -> list[dict[str, Any]]:
    """The example overlay as `kubectl kustomize` renders it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the rendered manifests cannot be played")
    out = subprocess.run([kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def for_podman(docs: list[dict[str, Any]], secrets: Path, settings: dict[str, str], port: int) -> list[dict[str, Any]]:
    """The rendered documents with podman 4.3's differences applied (see the module's docstring)."""
    played = []
    for doc in docs:
        if doc["kind"] in LEFT_OUT:
            continue
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("hublink-env"):
            doc["data"].update(settings)
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = 1
            pod = doc["spec"]["template"]["spec"]
            pod["hostNetwork"] = True
            for container in pod["containers"]:
                container.pop("ports", None)  # podman refuses port mappings on the host's network
                for probe in ("readinessProbe", "livenessProbe"):
                    if "httpGet" in container.get(probe, {}):
                        container[probe]["httpGet"]["port"] = port
            for volume in pod["volumes"]:
                if "secret" in volume:
                    del volume["secret"]
                    volume["hostPath"] = {"path": str(secrets), "type": "Directory"}
        played.append(doc)
    return played


@pytest.fixture
def kube_pods(engine: Engine, deployment: Deployment, tmp_path: Path) -> Iterator[str]:
    """The example overlay's web and worker pods, on the deployment's Redis (database 1) and simulator."""
    docs = rendered()
    secret = next(doc for doc in docs if doc["kind"] == "Secret")
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    redis_url = deployment.redis_url.rsplit("/", 1)[0] + "/1"
    values |= {"REDIS_URL": redis_url, "HUBLINK_API_TOKEN": API_TOKEN, "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN}
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o755)
    secrets.chmod(0o755)
    for key, value in values.items():
        (secrets / key).write_text(value + "\n")
        (secrets / key).chmod(0o644)
    port = free_port()
    settings = {"HUBSPOT_BASE_URL": deployment.sim_url, "HOST": "127.0.0.1", "PORT": str(port)}
    manifest = tmp_path / "hublink.yaml"
    manifest.write_text(yaml.safe_dump_all(for_podman(docs, secrets, settings, port)))
    engine.run("kube", "play", str(manifest), timeout=180)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        engine.run("kube", "down", str(manifest), check=False, timeout=120)


def test_the_rendered_deployments_run_and_link_a_record(kube_pods: str, deployment: Deployment) -> None:
    """The web pod becomes ready, and an item posted to it is linked by the worker pod."""

    def ready() -> bool:
        """True once the kube-played web's /readyz answers 200."""
        try:
            return requests.get(kube_pods + "/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(ready, timeout=120, interval=0.2, what="the kube-played web's /readyz")
    response = requests.post(
        f"{kube_pods}/api/associations",
        json={
            "associations": [
                {"fromObjectType": "deals", "fromObjectId": "4401", "toObjectType": "contacts", "toObjectId": "4402"}
            ]
        },
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    wait_for(lambda: ("deals", "4401", "contacts", "4402") in deployment.pairs(), timeout=60, what="the link")
    FIGURES["podman kube play of the example overlay"] = "web ready, a direct-API item linked by the worker pod"
