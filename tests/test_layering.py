"""The layers (issue 20): mental_r1/ (contract, Assessor, engine) imports nothing from app/ or training/;
training/ imports nothing from app/; bench/ reads only the service's settings (bench/connections.py measures
the service's connection limits against them)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_top_packages(path: Path) -> dict[str, set[str]]:
    """{top-level package: {module imported}} for every import in one source file."""
    out: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            out.setdefault(name.split(".")[0], set()).add(name)
    return out


@pytest.mark.parametrize(("package", "forbidden", "allowed"), [
    ("mental_r1", {"app", "training", "bench"}, set()),
    ("training", {"app", "bench"}, set()),
    ("bench", {"app"}, {"app.settings"}),
])
def test_lower_layers_do_not_import_the_upper_ones(package, forbidden, allowed):
    found = []
    files = sorted((REPO / package).rglob("*.py"))
    assert files, package
    for path in files:
        for top, modules in imported_top_packages(path).items():
            found += [f"{path.relative_to(REPO)}: {m}" for m in sorted(modules) if top in forbidden and m not in allowed]
    assert not found, "imports across layers:\n" + "\n".join(found)


def test_the_check_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import os\ndef f():\n    from app.assessor import X\n    import training.rewards as r\n")
    assert imported_top_packages(src) == {"os": {"os"}, "app": {"app.assessor"}, "training": {"training.rewards"}}
