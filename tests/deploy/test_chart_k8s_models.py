"""Rendered objects checked against the Kubernetes API models of the official Python client
(`kubernetes` package, generated from the Kubernetes OpenAPI spec): every field name must exist at its
place, values must have the API's types, required fields must be present. This stands in for a
server-side dry run, which needs a cluster.

Custom resources (the optional PodMonitor) have no model there and are skipped."""

from __future__ import annotations

import copy
import importlib
import json

import pytest
from pydantic import ValidationError

from tests.deploy.conftest import WITH_KEY, deep_merge, require

ALL_ON = {"metrics": {"podMonitor": {"enabled": True}},
          "networkPolicy": {"enabled": True, "apiFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                            "opsFrom": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}]},
          "crisisResources": {"default": [{"name": "Emergency services", "contact": "112"}]},
          "extraEnv": [{"name": "VLLM_CPU_OMP_THREADS_BIND", "value": "0-1"}],
          "extraArgs": ["--max-num-seqs", "16"], "topologySpreadConstraints": [
              {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
               "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "mental-r1"}}}]}


@pytest.fixture(scope="module")
def api():
    try:
        client = importlib.import_module("kubernetes.client")
    except ImportError:
        require("the Kubernetes API models (Python package kubernetes)", "kubernetes")
    return client.ApiClient()


def key_paths(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"{prefix}/{k}"
            yield from key_paths(v, f"{prefix}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from key_paths(v, f"{prefix}[{i}]")


def quantities_as_strings(obj, key=None):
    """Resource quantities may be JSON numbers in a manifest; the client's models type them as strings."""
    if isinstance(obj, dict):
        return {k: str(v) if key in ("limits", "requests") and isinstance(v, int | float)
                else quantities_as_strings(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [quantities_as_strings(v, key) for v in obj]
    return obj


def unknown_fields(api, obj: dict) -> list[str]:
    """Deserialize into the API model (raises on wrong types or missing required fields) and return the
    key paths the model does not know (they vanish in the round trip)."""
    model = obj["apiVersion"].split("/")[-1].capitalize() + obj["kind"]  # apps/v1 Deployment -> V1Deployment
    data = quantities_as_strings(obj)
    back = api.sanitize_for_serialization(api.deserialize(json.dumps(data), model, None))
    return sorted(set(key_paths(data)) - set(key_paths(back)))


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
@pytest.mark.parametrize("extra", [{}, ALL_ON], ids=["defaults", "all-options"])
def test_rendered_objects_match_the_kubernetes_api(helm, api, profile, extra):
    rendered = helm.render(deep_merge({"profile": profile, **WITH_KEY}, extra))
    checked = set()
    for obj in rendered.objects:
        group = obj["apiVersion"].split("/")[0]
        if "." in group and not group.endswith(".k8s.io"):  # a CRD group such as monitoring.coreos.com
            continue
        assert unknown_fields(api, obj) == [], f"{obj['kind']} has fields the Kubernetes API does not know"
        checked.add(obj["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
            "Secret", "ServiceAccount", "Pod", "NetworkPolicy"} <= checked


def test_the_check_catches_typos_and_wrong_types(helm, api):
    deployment = helm.render(WITH_KEY).one("Deployment")
    typo = copy.deepcopy(deployment)
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert unknown_fields(api, typo) == ["/spec/template/spec/containers[0]/readinesProbe",
                                         "/spec/template/spec/containers[0]/readinesProbe/failureThreshold",
                                         "/spec/template/spec/containers[0]/readinesProbe/httpGet",
                                         "/spec/template/spec/containers[0]/readinesProbe/httpGet/path",
                                         "/spec/template/spec/containers[0]/readinesProbe/httpGet/port",
                                         "/spec/template/spec/containers[0]/readinesProbe/periodSeconds",
                                         "/spec/template/spec/containers[0]/readinesProbe/timeoutSeconds"]
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "a minute"
    with pytest.raises(ValidationError, match="terminationGracePeriodSeconds"):
        unknown_fields(api, wrong_type)
