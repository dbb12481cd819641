"""The shipped deployment files: the Containerfile, compose.yaml, the Kubernetes base, and the version they carry."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hublink import __version__
from hublink.config.secret_files import SECRET_VARIABLES
from hublink.config.settings import ENVIRONMENT_VARIABLES, Settings
from web import create_app

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"


def compose() -> dict[str, Any]:
    """compose.yaml, parsed (YAML merge keys applied)."""
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return loaded


def kubernetes_documents() -> list[dict[str, Any]]:
    """Every document of the Kubernetes base."""
    return [
        doc
        for path in sorted((KUBERNETES / "base").glob("*.yaml"))
        if path.name not in {"kustomization.yaml", "rules.yaml"}
        for doc in yaml.safe_load_all(path.read_text())
    ]


class TestVersion:
    """The version is written once, in hublink/__init__.py, and everything else reads or checks it."""

    def test_healthz_names_the_version(self, make_settings: Callable[..., Settings]) -> None:
        """/healthz answers the running version next to its status."""
        app = create_app(make_settings())
        answer = app.test_client().get("/healthz")
        assert answer.status_code == 200
        assert answer.get_json() == {"status": "ok", "version": __version__}

    def test_the_kubernetes_image_tag_is_the_version(self) -> None:
        """The kustomize base deploys the image tagged with hublink.__version__."""
        kustomization = yaml.safe_load((KUBERNETES / "base" / "kustomization.yaml").read_text())
        assert [image["newTag"] for image in kustomization["images"]] == [__version__]

    def test_the_containerfile_labels_the_version_it_checks(self) -> None:
        """The image's version label comes from the VERSION argument, which the build checks against the code."""
        text = (REPO / "Containerfile").read_text()
        assert 'org.opencontainers.image.version="${VERSION}"' in text
        assert "hublink.__version__" in text


class TestContainerfile:
    """The image's shape: chosen base, non-root, hublink as entry point, a health check; Dockerfile reads it too."""

    def test_the_image_is_built_as_the_issue_asks(self) -> None:
        """ARG BASE picks the base; the runtime runs hublink web as a non-root user, with a HEALTHCHECK."""
        text = (REPO / "Containerfile").read_text()
        assert re.search(r"^ARG BASE=python:3\.11-slim-bookworm$", text, re.M)
        assert re.search(r"^FROM \$\{BASE\} AS builder$", text, re.M)
        assert re.search(r"^USER 10001", text, re.M)
        assert re.search(r'^ENTRYPOINT \["hublink"\]$', text, re.M)
        assert re.search(r'^CMD \["web"\]$', text, re.M)
        assert re.search(r"^HEALTHCHECK ", text, re.M)
        assert "rules.yaml" not in re.sub(r"#.*", "", text)  # the rules file is mounted, never copied in

    def test_dockerfile_is_the_containerfile(self) -> None:
        """Dockerfile is a link to the Containerfile, so docker build reads the same file."""
        assert (REPO / "Dockerfile").resolve() == (REPO / "Containerfile").resolve()


class TestCompose:
    """compose.yaml: Redis with AOF on a volume, the web, two workers, the simulator under dev, health-gated start."""

    def test_services_and_their_order(self) -> None:
        """The web and both workers wait for a healthy Redis; the simulator runs only with the dev profile."""
        services = compose()["services"]
        assert set(services) == {"redis", "web", "worker-1", "worker-2", "hubspot-sim"}
        for name in ("web", "worker-1", "worker-2"):
            assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services["worker-1"]["command"] == services["worker-2"]["command"] == ["worker"]
        assert services["web"]["command"] == ["web"]
        assert services["hubspot-sim"]["profiles"] == ["dev"]
        assert "healthcheck" in services["redis"]

    def test_redis_keeps_an_append_only_file_on_a_volume(self) -> None:
        """Redis runs with appendonly yes and its /data on a named volume."""
        document = compose()
        redis = document["services"]["redis"]
        command = redis["command"]
        assert command[command.index("--appendonly") + 1] == "yes"
        assert "redis-data:/data" in redis["volumes"]
        assert "redis-data" in document["volumes"]

    def test_environment_names_are_the_settings_variables(self) -> None:
        """Every variable compose passes is one Settings reads (or its _FILE form), so none is misspelt."""
        known = set(ENVIRONMENT_VARIABLES) | {f"{name}_FILE" for name in SECRET_VARIABLES}
        for name in ("web", "worker-1", "worker-2"):
            assert set(compose()["services"][name]["environment"]) <= known

    def test_the_rules_file_is_mounted_read_only(self) -> None:
        """The rules file reaches /etc/hublink/rules.yaml as a read-only mount."""
        volumes = compose()["services"]["web"]["volumes"]
        assert any(":/etc/hublink/rules.yaml:ro" in v for v in volumes)


class TestKubernetes:
    """The kustomize base: probes, grace periods, disruption budgets, and every secret referenced."""

    def deployments(self) -> dict[str, dict[str, Any]]:
        """The base's Deployments by name."""
        return {d["metadata"]["name"]: d for d in kubernetes_documents() if d["kind"] == "Deployment"}

    def test_web_probes_and_graceful_stop(self) -> None:
        """The web is ready on /readyz, alive on /healthz, stops after a preStop, within a grace period."""
        web = self.deployments()["hublink-web"]["spec"]["template"]["spec"]
        container = web["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert "preStop" in container["lifecycle"]
        assert web["terminationGracePeriodSeconds"] > 25  # preStop 5 s + gunicorn's graceful_timeout 20 s
        assert container["resources"]["requests"]

    def test_worker_liveness_and_a_grace_period_longer_than_a_drain(self) -> None:
        """The worker is alive while worker --check passes, and has longer than one HubSpot call to stop."""
        worker = self.deployments()["hublink-worker"]["spec"]["template"]["spec"]
        container = worker["containers"][0]
        assert container["livenessProbe"]["exec"]["command"] == ["hublink", "worker", "--check"]
        assert worker["terminationGracePeriodSeconds"] > 2 * Settings().hubspot_read_timeout_s

    def test_every_secret_is_referenced(self) -> None:
        """Each secret variable reaches the web from the Secret, as a file (NAME_FILE) or a key reference."""
        env = self.deployments()["hublink-web"]["spec"]["template"]["spec"]["containers"][0]["env"]
        referenced = {e["name"].removesuffix("_FILE") for e in env if e["name"].endswith("_FILE")}
        referenced |= {e["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
        assert referenced == set(SECRET_VARIABLES)

    def test_disruption_budgets_cover_web_and_workers(self) -> None:
        """A PodDisruptionBudget keeps at least one web and one worker."""
        budgets = [d for d in kubernetes_documents() if d["kind"] == "PodDisruptionBudget"]
        components = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for b in budgets}
        assert components == {"web", "worker"}
