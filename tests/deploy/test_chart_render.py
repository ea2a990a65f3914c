"""The chart rendered by Helm itself (helm-python-sdk: Helm v4's Go SDK, the engine of `helm template`),
for the CPU and GPU profiles, with assertions on the objects a cluster would receive.

No cluster is involved: scheduling, probes firing, the drain and GPU allocation need a real one."""

from __future__ import annotations

import base64
import json
import math
import os

import pytest
import yaml

from tests.deploy.conftest import CHART, TEST_KEY_HASH, WITH_KEY, deep_merge

PROFILES = ["cpu", "gpu"]


def values(profile: str = "cpu", **override) -> dict:
    return deep_merge({"profile": profile, **WITH_KEY}, override)


@pytest.fixture(scope="module", params=PROFILES)
def rendered(request, helm):
    return helm.render(values(request.param))


@pytest.fixture(scope="module")
def chart_values():
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_renders_the_expected_objects(rendered):
    assert rendered.kinds == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                              "ConfigMap", "Secret", "ServiceAccount", "Pod", "NetworkPolicy"}
    test_pod = rendered.one("Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_objects_are_well_formed(rendered):
    for o in rendered.objects:
        assert o["apiVersion"] and o["kind"]
        name = o["metadata"]["name"]
        assert len(name) <= 63 and name == name.lower(), name
        assert o["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"


def test_long_release_names_are_truncated_to_63_chars(helm):
    helm.helm.validate_release_name("x" * 53)  # Helm's longest release name
    r = helm.render(values(), release="x" * 53)
    names = [o["metadata"]["name"] for o in r.objects]
    assert all(len(n) <= 63 for n in names), names
    assert len(set(names) - {r.one("Pod")["metadata"]["name"]}) == 1  # one fullname for all objects


# ---------------------------------------------------------------------------------------------- probes
def test_probes(rendered):
    c = rendered.container
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"},
                          {"name": "ops", "containerPort": 9090, "protocol": "TCP"}]
    startup, live, ready = c["startupProbe"], c["livenessProbe"], c["readinessProbe"]
    assert startup["httpGet"] == {"path": "/readyz", "port": "http"}
    assert live["httpGet"] == {"path": "/livez", "port": "http"}
    assert ready["httpGet"] == {"path": "/readyz", "port": "http"}
    # The model load gets 10 s x 60 = 10 minutes before liveness may restart the pod.
    assert (startup["periodSeconds"], startup["failureThreshold"]) == (10, 60)
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    for p in (startup, live, ready):
        assert p["timeoutSeconds"] < p["periodSeconds"]


def test_probe_budget_follows_values(helm):
    c = helm.render(values(probes={"startup": {"periodSeconds": 15, "failureThreshold": 80}})).container
    assert (c["startupProbe"]["periodSeconds"], c["startupProbe"]["failureThreshold"]) == (15, 80)


# ------------------------------------------------------------------------------------------- shutdown
def grace_and_prestop(r) -> tuple[int, int, float]:
    pod = r.pod["spec"]
    cmd = r.container["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "sleep"
    drain = float(r.one("ConfigMap")["data"]["MENTAL_R1_DRAIN_TIMEOUT_S"])
    return pod["terminationGracePeriodSeconds"], int(cmd[1]), drain


def test_grace_period_covers_prestop_and_drain(rendered):
    tgps, pre_stop, drain = grace_and_prestop(rendered)
    assert (tgps, pre_stop, drain) == (70, 10, 30)
    assert tgps >= pre_stop + drain
    # The app drains for up to drainTimeoutS, then bounds the engine shutdown by it as well.
    assert tgps >= pre_stop + 2 * drain


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("pre_stop,drain,explicit", [
    (0, 0, None), (5, 12.5, None), (20, 120, None), (10, 30, 40), (10, 30, 300),
])
def test_grace_period_arithmetic(helm, profile, pre_stop, drain, explicit):
    r = helm.render(values(profile, settings={"drainTimeoutS": drain},
                           lifecycle={"preStopSleepSeconds": pre_stop, "terminationGracePeriodSeconds": explicit}))
    tgps, got_pre_stop, got_drain = grace_and_prestop(r)
    assert (got_pre_stop, got_drain) == (pre_stop, drain)
    assert tgps >= pre_stop + math.ceil(drain)
    assert tgps == (explicit if explicit is not None else pre_stop + math.ceil(drain) + 30)


def test_grace_period_shorter_than_prestop_plus_drain_is_refused(helm):
    with pytest.raises(helm.helm.HelmError, match="must be >="):
        helm.render(values(lifecycle={"terminationGracePeriodSeconds": 39}))


# ------------------------------------------------------------------------------------------- security
def test_non_root_read_only(rendered, dockerfile):
    pod_sc = rendered.pod["spec"]["securityContext"]
    c_sc = rendered.container["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and c_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == 2000 and pod_sc["runAsGroup"] == 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c_sc["readOnlyRootFilesystem"] is True
    assert c_sc["allowPrivilegeEscalation"] is False
    assert c_sc["capabilities"] == {"drop": ["ALL"]}
    assert rendered.pod["spec"]["automountServiceAccountToken"] is False
    # The image's user is the one the pod runs as.
    user = [i.args for i in dockerfile.stage("runtime") if i.keyword == "USER"][-1]
    assert user.split(":")[0] == str(pod_sc["runAsUser"])


def test_writable_scratch_dirs_for_a_read_only_root(rendered, dockerfile):
    mounts = {m["mountPath"]: m["name"] for m in rendered.container["volumeMounts"]}
    volumes = {v["name"]: v for v in rendered.pod["spec"]["volumes"]}
    home = dockerfile.env_inherited("runtime")["HOME"]
    for path in ("/tmp", home, "/dev/shm"):
        assert path in mounts, f"{path} is not writable under readOnlyRootFilesystem"
        assert "emptyDir" in volumes[mounts[path]]
        assert volumes[mounts[path]]["emptyDir"]["sizeLimit"]
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert set(mounts.values()) <= set(volumes), "a volumeMount names a volume the pod does not have"
    # The model cache of the image is not shadowed by a scratch mount.
    cache = dockerfile.env_inherited("runtime")["MENTAL_R1_CACHE"]
    assert not any(cache == p or cache.startswith(p.rstrip("/") + "/") for p in mounts)


# ------------------------------------------------------------------------------- profiles, resources
def test_cpu_profile(helm):
    r = helm.render(values("cpu"))
    res = r.container["resources"]
    assert res["requests"] == {"cpu": "2", "memory": "6Gi"} == res["limits"]  # Guaranteed QoS
    assert "nvidia.com/gpu" not in json.dumps(r.objects)
    assert r.container["image"] == "mental-r1:0.1.0"
    assert "tolerations" not in r.pod["spec"] and "runtimeClassName" not in r.pod["spec"]


def test_gpu_profile(helm):
    r = helm.render(values("gpu", profiles={"gpu": {"runtimeClassName": "nvidia"}}))
    res = r.container["resources"]
    assert res["limits"]["nvidia.com/gpu"] == 1 and res["requests"]["nvidia.com/gpu"] == 1
    assert r.container["image"] == "mental-r1:0.1.0-gpu"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in r.pod["spec"]["tolerations"]
    assert r.pod["spec"]["runtimeClassName"] == "nvidia"
    assert r.pod["metadata"]["labels"]["mental-r1/profile"] == "gpu"


def test_explicit_image_and_resources_override_the_profile(helm):
    r = helm.render(values("gpu", image={"repository": "reg.example/mr1", "tag": "abc"},
                           resources={"limits": {"memory": "8Gi"}}))
    assert r.container["image"] == "reg.example/mr1:abc"
    assert r.container["resources"] == {"limits": {"memory": "8Gi"}}
    digest = "sha256:" + "cd" * 32
    assert helm.render(values(image={"digest": digest})).container["image"] == f"mental-r1@{digest}"


def test_node_selectors_and_tolerations_combine(helm):
    r = helm.render(values("gpu", nodeSelector={"pool": "inference"},
                           profiles={"gpu": {"nodeSelector": {"gpu": "a100"}}},
                           tolerations=[{"key": "dedicated", "operator": "Exists"}]))
    spec = r.pod["spec"]
    assert spec["nodeSelector"] == {"pool": "inference", "gpu": "a100"}
    assert [t["key"] for t in spec["tolerations"]] == ["dedicated", "nvidia.com/gpu"]


# ------------------------------------------------------------------------- one worker, the entrypoint
def test_one_uvicorn_worker_per_pod(rendered):
    c = rendered.container
    assert "command" not in c, "the image's entrypoint (python -m app) must not be replaced"
    assert not any("worker" in a for a in c.get("args", []))
    assert len(rendered.pod["spec"]["containers"]) == 1


def test_extra_args_are_passed_to_the_app(helm):
    c = helm.render(values(extraArgs=["--model", "/models/mental-r1"])).container
    assert c["args"] == ["--model", "/models/mental-r1"]


def test_schema_is_enforced_by_helm(helm):
    for bad in ({"profile": "tpu"}, {"extraArgs": ["--workers=2"]}, {"auth": {"apiKeyHashes": ["key"]}},
                {"crisisResources": {"US": [{"name": "988"}]}}):
        with pytest.raises(helm.helm.HelmError, match="schema"):
            helm.render(deep_merge(WITH_KEY, bad))


# ------------------------------------------------------------------------------- settings and secrets
CONTRACT_DEFAULTS = {
    "MENTAL_R1_HOST": "0.0.0.0", "MENTAL_R1_PORT": "8000", "MENTAL_R1_OPS_HOST": "0.0.0.0",
    "MENTAL_R1_OPS_PORT": "9090", "MENTAL_R1_MAX_MODEL_LEN": "2048",
    "MENTAL_R1_KV_CACHE_GIB": "1", "MENTAL_R1_MAX_NUM_SEQS": "32", "MENTAL_R1_MAX_QUEUED_REQUESTS": "256",
    "MENTAL_R1_REQUEST_TIMEOUT_S": "120", "MENTAL_R1_DRAIN_TIMEOUT_S": "30", "MENTAL_R1_MAX_TEXT_CHARS": "4000",
    "MENTAL_R1_ENV": "production", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
}


def test_configmap_holds_the_contract_settings(rendered):
    env = rendered.env()
    assert {k: env.get(k) for k in CONTRACT_DEFAULTS} == CONTRACT_DEFAULTS
    assert env["MENTAL_R1_API_KEY_HASHES"] == TEST_KEY_HASH
    assert "MENTAL_R1_MODEL" not in env  # the image's embedded default model
    assert "MENTAL_R1_CRISIS_RESOURCES_FILE" not in env
    env_from = rendered.container["envFrom"]
    assert env_from == [{"configMapRef": {"name": rendered.one("ConfigMap")["metadata"]["name"]}}]


def test_settings_flow_into_the_configmap(helm):
    r = helm.render(values(settings={"model": "/models/merged", "maxNumSeqs": 8, "kvCacheGib": 2.5,
                                     "port": 9000, "opsPort": 9100}))
    env = r.env()
    assert (env["MENTAL_R1_MODEL"], env["MENTAL_R1_MAX_NUM_SEQS"], env["MENTAL_R1_KV_CACHE_GIB"]) == (
        "/models/merged", "8", "2.5")
    assert [p["containerPort"] for p in r.container["ports"]] == [9000, 9100]
    assert r.pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"  # metrics live on the ops port
    with pytest.raises(helm.helm.HelmError, match="opsPort must differ"):
        helm.render(values(settings={"port": 9000, "opsPort": 9000}))


def test_rendered_environment_is_accepted_by_the_app_settings(rendered, monkeypatch):
    """The app's own settings class (app/settings.py) parses what the chart sets."""
    from app import settings as settings_mod

    for k in list(os.environ):
        if k.startswith("MENTAL_R1_"):
            monkeypatch.delenv(k)
    for k, v in rendered.env().items():
        monkeypatch.setenv(k, v)
    s = settings_mod.Settings()
    assert (s.env, s.host, s.port, s.max_model_len, s.max_num_seqs) == ("production", "0.0.0.0", 8000, 2048, 32)
    assert (s.ops_host, s.ops_port) == ("0.0.0.0", 9090)
    assert s.drain_timeout_s == 30 and s.request_timeout_s == 120 and s.kv_cache_gib == 1
    assert s.key_hashes == [TEST_KEY_HASH]


def test_chart_defaults_match_the_app_defaults(chart_values):
    from app import settings as settings_mod

    fields = settings_mod.Settings.model_fields
    mapping = {"port": "port", "maxModelLen": "max_model_len", "kvCacheGib": "kv_cache_gib",
               "maxNumSeqs": "max_num_seqs", "maxQueuedRequests": "max_queued_requests",
               "requestTimeoutS": "request_timeout_s", "drainTimeoutS": "drain_timeout_s",
               "maxTextChars": "max_text_chars"}
    # env and opsPort differ on purpose: the chart runs production with its ops listener
    assert set(mapping) | {"env", "model", "opsPort"} == set(chart_values["settings"])
    for chart_key, field in mapping.items():
        assert chart_values["settings"][chart_key] == fields[field].default, chart_key


def test_secret_holds_the_hashes(helm):
    other = "f" * 64
    r = helm.render(values(auth={"apiKeyHashes": [TEST_KEY_HASH, other]}))
    secret = r.one("Secret")
    assert base64.b64decode(secret["data"]["api-key-hashes"]).decode() == f"{TEST_KEY_HASH},{other}"
    assert r.env()["MENTAL_R1_API_KEY_HASHES"] == f"{TEST_KEY_HASH},{other}"
    assert TEST_KEY_HASH not in json.dumps(r.one("ConfigMap"))


def test_existing_secret(helm):
    r = helm.render({"auth": {"existingSecret": "mr1-keys", "existingSecretKey": "hashes"}})
    assert "Secret" not in r.kinds
    (env,) = [e for e in r.container["env"] if e["name"] == "MENTAL_R1_API_KEY_HASHES"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "mr1-keys", "key": "hashes"}


def test_production_without_api_keys_is_refused(helm):
    with pytest.raises(helm.helm.HelmError, match="production needs API keys"):
        helm.render({})


def test_development_may_run_without_keys(helm):
    r = helm.render({"settings": {"env": "development"}})
    assert "Secret" not in r.kinds
    assert "MENTAL_R1_API_KEY_HASHES" not in r.env()
    assert r.env()["MENTAL_R1_ENV"] == "development"


def test_crisis_resources_file(helm, tmp_path):
    resources = {"default": [{"name": "Local emergency services", "contact": "112 / 911", "available": "24/7"}],
                 "US": [{"name": "988 Suicide & Crisis Lifeline", "contact": "call or text 988"}],
                 "GB": [{"name": "Samaritans", "contact": "call 116 123", "available": "24/7"}]}
    r = helm.render(values(crisisResources=resources))
    cm = r.one("ConfigMap")
    assert json.loads(cm["data"]["crisis-resources.json"]) == resources
    # The app's own loader reads the file the chart writes.
    from mental_r1.safety import CrisisResources

    f = tmp_path / "crisis-resources.json"
    f.write_text(cm["data"]["crisis-resources.json"])
    assert CrisisResources.from_file(f).for_locale("en-GB")[0].name == "Samaritans"
    path = cm["data"]["MENTAL_R1_CRISIS_RESOURCES_FILE"]
    mount = next(m for m in r.container["volumeMounts"] if m["name"] == "config")
    assert path == mount["mountPath"] + "/crisis-resources.json" and mount["readOnly"] is True
    vol = next(v for v in r.pod["spec"]["volumes"] if v["name"] == "config")
    assert vol["configMap"]["items"] == [{"key": "crisis-resources.json", "path": "crisis-resources.json"}]


def test_config_changes_roll_the_pods(helm):
    a = helm.render(values()).pod["metadata"]["annotations"]
    b = helm.render(values(settings={"maxTextChars": 2000})).pod["metadata"]["annotations"]
    c = helm.render(values(auth={"apiKeyHashes": ["e" * 64]})).pod["metadata"]["annotations"]
    assert a["checksum/config"] != b["checksum/config"] and a["checksum/secret"] == b["checksum/secret"]
    assert a["checksum/secret"] != c["checksum/secret"]


# ------------------------------------------------------------------------ service, HPA, PDB, metrics
def test_ops_port_is_on_no_service_and_only_opsfrom_reaches_it(rendered, helm):
    assert all(p["targetPort"] != "ops" and p["port"] != 9090
               for svc in rendered.of_kind("Service") for p in svc["spec"]["ports"])
    pol = rendered.one("NetworkPolicy")["spec"]
    assert pol["podSelector"]["matchLabels"].items() <= rendered.pod["metadata"]["labels"].items()
    assert pol["policyTypes"] == ["Ingress"]
    api, ops = pol["ingress"]
    assert api == {"ports": [{"port": "http", "protocol": "TCP"}]}  # no `from`: every source (probes, Service)
    assert ops["ports"] == [{"port": "ops", "protocol": "TCP"}]
    assert ops["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    # no ops peers: no rule for the ops port at all (a rule without `from` would open it to everyone)
    closed = helm.render(values(networkPolicy={"opsFrom": [], "apiFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}))
    (only,) = closed.one("NetworkPolicy")["spec"]["ingress"]
    assert only == {"ports": [{"port": "http", "protocol": "TCP"}], "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}
    assert "NetworkPolicy" not in helm.render(values(networkPolicy={"enabled": False})).kinds


def test_service_selects_the_pods(rendered):
    svc = rendered.one("Service")["spec"]
    labels = rendered.pod["metadata"]["labels"]
    assert svc["selector"].items() <= labels.items()
    assert svc["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert rendered.one("Deployment")["spec"]["selector"]["matchLabels"] == svc["selector"]


def test_hpa_scales_the_deployment(rendered):
    hpa = rendered.one("HorizontalPodAutoscaler")
    dep = rendered.one("Deployment")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": dep["metadata"]["name"]}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in dep["spec"], "with an HPA the Deployment must not pin replicas"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300


def test_without_autoscaling_replicas_are_set(helm):
    r = helm.render(values(autoscaling={"enabled": False}, replicaCount=2))
    assert "HorizontalPodAutoscaler" not in r.kinds
    assert r.one("Deployment")["spec"]["replicas"] == 2


def test_custom_hpa_metrics(helm):
    metric = {"type": "Pods", "pods": {"metric": {"name": "vllm_num_requests_waiting"},
                                        "target": {"type": "AverageValue", "averageValue": "4"}}}
    r = helm.render(values("gpu", autoscaling={"metrics": [metric]}))
    assert r.one("HorizontalPodAutoscaler")["spec"]["metrics"] == [metric]


def test_pdb(rendered, helm):
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= rendered.pod["metadata"]["labels"].items()
    r = helm.render(values(podDisruptionBudget={"minAvailable": 1, "maxUnavailable": None}))
    assert r.one("PodDisruptionBudget")["spec"] == {
        "minAvailable": 1, "selector": pdb["spec"]["selector"]}
    with pytest.raises(helm.helm.HelmError, match="only one of"):
        helm.render(values(podDisruptionBudget={"minAvailable": 1}))


def test_rolling_update_keeps_capacity(rendered):
    strategy = rendered.one("Deployment")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_metrics_scraping(rendered, helm):
    ann = rendered.pod["metadata"]["annotations"]
    assert (ann["prometheus.io/scrape"], ann["prometheus.io/path"], ann["prometheus.io/port"]) == (
        "true", "/metrics", "9090")
    r = helm.render(values(metrics={"podMonitor": {"enabled": True, "labels": {"release": "kps"}}}))
    pm = r.one("PodMonitor")
    assert pm["spec"]["podMetricsEndpoints"] == [{"port": "ops", "path": "/metrics", "interval": "30s"}]
    assert pm["spec"]["selector"]["matchLabels"].items() <= r.pod["metadata"]["labels"].items()
    assert pm["metadata"]["labels"]["release"] == "kps"


# ------------------------------------------------------------------------------------------- helm lint
@pytest.mark.parametrize("profile", PROFILES)
def test_helm_lint_strict(helm, profile):
    report = helm.helm.lint(str(CHART), values(profile), strict=True)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 = warning, 3 = error
    assert problems == []
