"""deploy/kubernetes: kustomize renders, the API schemas accept, reviewers' checks pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from maskserve.settings import Settings

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
OVERLAYS = ["base", "overlays/cpu", "overlays/gpu"]
K8S_VERSION = "1.32.0"  # the kubectl on the build machine; schemas shipped by kubernetes-validate

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed"
)


def render(folder: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


@pytest.mark.parametrize("folder", OVERLAYS)
def test_every_manifest_passes_strict_schema_validation(folder: str) -> None:
    import kubernetes_validate

    docs = render(folder)
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_typo() -> None:
    import kubernetes_validate

    deployment = of_kind(render("base"), "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("folder", OVERLAYS)
def test_what_reviewers_look_for(folder: str) -> None:
    docs = render(folder)
    (deployment,) = of_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (config,) = of_kind(docs, "ConfigMap")
    drain = float(config["data"]["MASKSERVE_DRAIN_GRACE_S"])
    assert drain == Settings.load(environ={}).drain_grace_s
    for container in pod["containers"]:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in container, probe
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), image
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > drain + pre_stop
    labels = pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for service in of_kind(docs, "Service"):
        assert service["spec"]["selector"].items() <= pod_labels.items()
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert any(m["type"] == "Pods" for m in hpa["spec"]["metrics"])
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_gpu_overlay_asks_for_a_gpu_and_the_cuda_image() -> None:
    (deployment,) = of_kind(render("overlays/gpu"), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].endswith("-gpu")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MASKSERVE_DEVICES"] == "cuda:0" and "MASKSERVE_API_KEYS" in env


def test_the_kserve_predictor_speaks_v2_and_probes_readiness() -> None:
    service = yaml.safe_load((ROOT / "kserve" / "inferenceservice.yaml").read_text())
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["spec"]["predictor"]["protocolVersion"] == "v2"
    container = service["spec"]["predictor"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert not container["image"].endswith(":latest")
