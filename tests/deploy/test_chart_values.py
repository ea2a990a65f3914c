"""The chart's static files: plain YAML parses, values.yaml satisfies values.schema.json, bad values fail.

Runs with jsonschema and PyYAML only (no Helm): the same schema Helm enforces on install."""

from __future__ import annotations

import copy
import json
import tomllib

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import CHART, REPO, TEST_KEY_HASH, deep_merge


def validator(schema):
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_schema_is_a_valid_draft7_schema(schema):
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"].startswith("http://json-schema.org/draft-07/")
    assert schema["additionalProperties"] is False  # typos in top-level keys are caught


def test_default_values_validate(schema, default_values):
    errors = [e.message for e in validator(schema).iter_errors(default_values)]
    assert errors == []


def test_schema_covers_every_key_of_values_yaml(schema, default_values):
    """Every key of values.yaml (two levels deep) is declared in the schema, so none is unchecked."""
    props = schema["properties"]
    for key, value in default_values.items():
        assert key in props, f"values.yaml key {key!r} missing from the schema"
        sub = props[key].get("properties")
        if isinstance(value, dict) and sub is not None:
            for k in value:
                assert k in sub, f"values.yaml key {key}.{k} missing from the schema"


GOOD = {
    "gpu profile": {"profile": "gpu"},
    "api key hashes": {"auth": {"apiKeyHashes": [TEST_KEY_HASH, "0" * 64]}},
    "existing secret": {"auth": {"existingSecret": "mental-r1-keys"}},
    "explicit grace period": {"lifecycle": {"terminationGracePeriodSeconds": 90}},
    "fractional KV cache": {"settings": {"kvCacheGib": 1.5, "drainTimeoutS": 12.5}},
    "pdb percent": {"podDisruptionBudget": {"minAvailable": "50%", "maxUnavailable": None}},
    "resources override": {"resources": {"requests": {"cpu": "500m", "memory": "3Gi"}}},
    "extra env": {"extraEnv": [{"name": "VLLM_CPU_OMP_THREADS_BIND", "value": "0-3"}]},
    "crisis resources": {"crisisResources": {
        "default": [{"name": "Local emergency services", "contact": "112 / 911"}],
        "US": [{"name": "988 Suicide & Crisis Lifeline", "contact": "call or text 988", "available": "24/7"}]}},
    "digest": {"image": {"digest": "sha256:" + "ab" * 32}},
    "ops peers": {"networkPolicy": {"opsFrom": [{"podSelector": {"matchLabels": {"app": "prometheus"}}},
                                                {"ipBlock": {"cidr": "10.1.0.0/16"}}]}},
    "no network policy": {"networkPolicy": {"enabled": False}},
}


@pytest.mark.parametrize("override", GOOD.values(), ids=GOOD.keys())
def test_good_variants_validate(schema, default_values, override):
    values = deep_merge(default_values, override)
    assert [e.message for e in validator(schema).iter_errors(values)] == []


BAD = {
    "unknown profile": {"profile": "tpu"},
    "unknown top-level key": {"replicas": 2},
    "typo in settings": {"settings": {"drainTimeout": 30}},
    "port zero": {"settings": {"port": 0}},
    "port as string": {"settings": {"port": "8000"}},
    "unknown env": {"settings": {"env": "staging"}},
    "zero KV cache": {"settings": {"kvCacheGib": 0}},
    "max model len too small": {"settings": {"maxModelLen": 16}},
    "negative drain": {"settings": {"drainTimeoutS": -1}},
    "key instead of hash": {"auth": {"apiKeyHashes": ["my-secret-api-key"]}},
    "upper-case hash": {"auth": {"apiKeyHashes": [TEST_KEY_HASH.upper()]}},
    "short hash": {"auth": {"apiKeyHashes": [TEST_KEY_HASH[:63]]}},
    "duplicate hash": {"auth": {"apiKeyHashes": [TEST_KEY_HASH, TEST_KEY_HASH]}},
    "liveness on readyz": {"probes": {"liveness": {"path": "/readyz"}}},
    "startup on livez": {"probes": {"startup": {"path": "/livez"}}},
    "zero failure threshold": {"probes": {"startup": {"failureThreshold": 0}}},
    "negative preStop": {"lifecycle": {"preStopSleepSeconds": -5}},
    "grace period zero": {"lifecycle": {"terminationGracePeriodSeconds": 0}},
    "several workers": {"extraArgs": ["--workers", "4"]},
    "root allowed": {"podSecurityContext": {"runAsNonRoot": False}},
    "uid 0": {"podSecurityContext": {"runAsUser": 0}},
    "privilege escalation": {"securityContext": {"allowPrivilegeEscalation": True}},
    "pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "bad digest": {"image": {"digest": "latest"}},
    "bad quantity": {"profiles": {"cpu": {"resources": {"limits": {"memory": "6 GB"}}}}},
    "hpa cpu over 100": {"autoscaling": {"targetCPUUtilizationPercentage": 150}},
    "service type": {"service": {"type": "Ingress"}},
    "env var name": {"extraEnv": [{"name": "1BAD", "value": "x"}]},
    "crisis resources without default": {"crisisResources": {"US": [{"name": "988", "contact": "988"}]}},
    "crisis resource without contact": {"crisisResources": {"default": [{"name": "Emergency"}]}},
    "ops port zero": {"settings": {"opsPort": 0}},
    "ops peer typo": {"networkPolicy": {"opsFrom": [{"podSelektor": {}}]}},
    "empty ops peer": {"networkPolicy": {"opsFrom": [{}]}},
    "service monitor (now a PodMonitor)": {"metrics": {"serviceMonitor": {"enabled": True}}},
    "crisis resource typo": {"crisisResources": {"default": [{"name": "E", "contact": "112", "phone": "112"}]}},
}


@pytest.mark.parametrize("override", BAD.values(), ids=BAD.keys())
def test_bad_values_are_rejected(schema, default_values, override):
    values = deep_merge(default_values, override)
    assert list(validator(schema).iter_errors(values)), f"schema accepted {override}"


def test_missing_required_section_is_rejected(schema, default_values):
    values = copy.deepcopy(default_values)
    del values["settings"]["drainTimeoutS"]
    assert list(validator(schema).iter_errors(values))


def plain_yaml_files():
    """Chart files that are plain YAML (templates/ holds Go templates, which are not)."""
    files = [p for p in CHART.rglob("*") if p.suffix in (".yaml", ".yml") and "templates" not in p.parts]
    return sorted(files)


def test_the_chart_has_its_plain_yaml_files():
    names = {p.relative_to(CHART).as_posix() for p in plain_yaml_files()}
    assert {"Chart.yaml", "values.yaml"} <= names


@pytest.mark.parametrize("path", plain_yaml_files(), ids=lambda p: p.relative_to(CHART).as_posix())
def test_plain_yaml_parses(path):
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs and all(isinstance(d, dict) for d in docs)


def test_schema_and_hadolint_config_parse():
    json.loads((CHART / "values.schema.json").read_text())
    cfg = yaml.safe_load((REPO / ".hadolint.yaml").read_text())
    assert isinstance(cfg.get("ignored"), list)


def test_chart_metadata():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["type"] == "application"
    assert chart["name"] == CHART.name
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"], "appVersion (the default image tag) != project version"


def test_templates_use_helpers_for_names():
    """Conventional chart: names and labels come from _helpers.tpl, not hard-coded strings."""
    templates = CHART / "templates"
    assert (templates / "_helpers.tpl").exists()
    for t in templates.glob("*.yaml"):
        text = t.read_text()
        if "kind:" in text:
            assert 'include "mental-r1.fullname"' in text or 'include "mental-r1.serviceAccountName"' in text, t.name
            assert 'include "mental-r1.labels"' in text, t.name
