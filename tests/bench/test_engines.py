import os
from pathlib import Path

import pytest

from bench.engines import run_variants

# A child in the protocol bench.dtype and bench.eager follow (its options from add_child_arguments; the result in
# PROMPTS_JSON.VARIANT), without an engine: it echoes what it was given.
CHILD = """
import argparse, json, sys
from pathlib import Path
from bench.engines import add_child_arguments
parser = argparse.ArgumentParser()
add_child_arguments(parser, "VARIANT")
args = parser.parse_args()
variant, prompts = args.child
if variant == "broken":
    sys.exit("no engine for you")
Path(f"{prompts}.{variant}").write_text(json.dumps(
    {"variant": variant, "model": args.model, "max_tokens": args.max_tokens, "prompts": json.loads(Path(prompts).read_text())}))
"""


@pytest.fixture
def child_module(tmp_path, monkeypatch):
    (tmp_path / "echo_child.py").write_text(CHILD)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return "echo_child"


def test_each_variant_runs_in_its_own_child_on_the_same_prompts(child_module, tmp_path):
    out = run_variants(child_module, "m", 8, ("a", "b"), {"batch": ["p1", "p2"]})
    assert out == {v: {"variant": v, "model": "m", "max_tokens": 8, "prompts": {"batch": ["p1", "p2"]}}
                   for v in ("a", "b")}
    assert [p.name for p in Path(tmp_path).iterdir() if p.name.endswith((".json", ".a", ".b"))] == []  # cleaned up


def test_a_failing_child_stops_the_run_with_its_error(child_module, tmp_path):
    with pytest.raises(SystemExit, match="the broken engine failed:\n.*no engine for you"):
        run_variants(child_module, "m", 8, ("a", "broken"), ["p"])
    assert [p.name for p in Path(tmp_path).iterdir() if p.name.endswith((".json", ".a"))] == []
