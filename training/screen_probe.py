"""Measure the crisis screen's text source on the crisis probe: posts written for the taxonomy of
docs/crisis-taxonomy.md, risk posts and posts that share their words without risk, per category.

    python training/screen_probe.py                      # the markdown table (dev and held-out parts)
    python training/screen_probe.py --output runs/eval/screen_probe.json

The probe (tests/mental_r1/crisis_probe.jsonl, one post a line: category, risk, kind, text) was written
before the lexicon was extended for it. Each post's part comes from a salted hash of its text (`part`):
"dev" is where the lexicon may be tuned (read its misses), "held-out" is only measured and says whether
the lexicon generalised. tests/mental_r1/test_crisis_probe.py asserts the targets on both parts:
risk posts flagged (level not none) >= 95 % and at level crisis >= 80 %; posts without risk at level
crisis <= 10 %. The text source only: the model source is off for the shipped model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mental_r1.screen import overall_level, text_signals

PROBE = Path(__file__).resolve().parents[1] / "tests" / "mental_r1" / "crisis_probe.jsonl"
PARTS = ("dev", "held-out")
TARGETS = {"risk_flagged": 0.95, "risk_crisis": 0.80, "control_crisis": 0.10}  # min, min, max


@dataclass(frozen=True)
class Post:
    category: str
    risk: bool
    kind: str  # risk posts: register (plain, slang, tweet, long); others: what makes them safe
    text: str

    @property
    def part(self) -> str:
        return part(self.text)


def part(text: str) -> str:
    """'dev' or 'held-out', fixed by the text alone."""
    return "dev" if hashlib.sha256(b"crisis-probe:" + text.encode()).digest()[0] % 2 == 0 else "held-out"


def load_probe(path: Path = PROBE) -> list[Post]:
    return [Post(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def level(text: str) -> str:
    return overall_level(text_signals(text))


def rates(posts: list[Post]) -> dict:
    """{n, flagged, crisis} with rates for the posts given (one level computed per post)."""
    levels = [level(p.text) for p in posts]
    n, flagged, crisis = len(levels), sum(v != "none" for v in levels), sum(v == "crisis" for v in levels)
    return {"n": n, "flagged": flagged, "crisis": crisis,
            "flagged_rate": round(flagged / n, 4) if n else None, "crisis_rate": round(crisis / n, 4) if n else None}


def measure(posts: list[Post]) -> dict:
    """part → {"all": {risk, control}, category → {risk, control}}."""
    out = {}
    for p in PARTS:
        sel = [x for x in posts if x.part == p]
        cats = sorted({x.category for x in posts})
        out[p] = {c: {"risk": rates([x for x in sel if x.category == c and x.risk]),
                      "control": rates([x for x in sel if x.category == c and not x.risk])} for c in cats}
        out[p]["all"] = {"risk": rates([x for x in sel if x.risk]), "control": rates([x for x in sel if not x.risk])}
    return out


def _cell(r: dict, key: str) -> str:
    return f"{r[key + '_rate']:.2f} ({r[key]}/{r['n']})" if r["n"] else "–"


def markdown(results: dict) -> str:
    lines = ["| category | part | risk: flagged | risk: crisis | no risk: flagged | no risk: crisis |",
             "|---|---|---:|---:|---:|---:|"]
    cats = [c for c in results[PARTS[0]] if c != "all"] + ["all"]
    for c in cats:
        for p in PARTS:
            r = results[p][c]
            name = f"**{c}**" if c == "all" else c
            lines.append(f"| {name} | {p} | {_cell(r['risk'], 'flagged')} | {_cell(r['risk'], 'crisis')} | "
                         f"{_cell(r['control'], 'flagged')} | {_cell(r['control'], 'crisis')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probe", type=Path, default=PROBE)
    ap.add_argument("--output", type=Path, default=None, help="also write the figures as JSON (no text)")
    args = ap.parse_args(argv)
    results = measure(load_probe(args.probe))
    print(markdown(results))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
