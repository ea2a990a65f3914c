import os
import re
import subprocess

from bench.provenance import REPO, provenance


def test_provenance_names_the_commit_and_the_load():
    start = os.getloadavg()
    p = provenance(start)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True,
                          cwd=REPO).stdout
    assert p["git_commit"] == head.strip() and re.fullmatch(r"[0-9a-f]{7,}", p["git_commit"])
    assert isinstance(p["git_dirty"], bool)
    assert p["loadavg_start"] == list(start) and len(p["loadavg_end"]) == 3 and p["cpus"] >= 1
    assert p["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "NO AVX", "ZVECTOR", "VSX", "SVE256", "SVE")
    assert isinstance(p["native_bf16"], bool)


def test_every_benchmark_that_records_a_result_records_its_provenance():
    for script in sorted((REPO / "bench").glob("*.py")):
        source = script.read_text()
        if ".write_text(json.dumps(" in source:
            assert "provenance(" in source, f"{script.name} writes a result without bench.provenance"
