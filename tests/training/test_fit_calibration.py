"""fit_calibration.py on a hand-made validation run: cross-validated comparison, written file, test refused."""

import json
import random
import subprocess
import sys
from pathlib import Path

from mental_r1.calibration import load_calibration

REPO = Path(__file__).resolve().parents[2]


def val_run(path: Path, split: str = "val") -> Path:
    # an overconfident model: log-odds of +-12 for its answer, right 75 % of the time, always answering "no"
    # a bit more often than the data has it
    rng = random.Random(0)
    preds = []
    for i in range(200):
        gold = "yes" if i % 4 else "no"  # 75 % yes
        right = rng.random() < 0.75
        answer = gold if right else ("no" if gold == "yes" else "yes")
        logps = {answer: -0.0001, ("no" if answer == "yes" else "yes"): -12.0}
        preds.append({"dataset": "DR", "task": "DR", "gold": gold, "label": answer, "format_valid": True,
                      "label_logprobs": logps})
    path.write_text(json.dumps({"split": split, "limit": None, "seed": 0, "model": "m", "predictions": preds}))
    return path


def run(*args):
    return subprocess.run([sys.executable, "training/fit_calibration.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=120)


def test_fit_writes_a_temperature_that_lowers_the_ece(tmp_path):
    out = tmp_path / "calibration.json"
    proc = run(val_run(tmp_path / "val.json"), "--label-bias", "--output", out)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["temperature"] > 3  # 12 nats of log-odds for 75 % accuracy: flatten a lot
    cv = doc["cross_validated"]
    assert cv["temperature"]["ece"] < cv["raw (T = 1)"]["ece"] - 0.1
    assert set(doc["label_bias"]) == {"DR"}
    assert load_calibration(tmp_path).temperature == doc["temperature"]
    assert "| temperature + label bias |" in proc.stdout


def test_a_test_split_run_is_refused(tmp_path):
    proc = run(val_run(tmp_path / "test.json", split="test"), "--output", tmp_path / "c.json")
    assert proc.returncode != 0 and "validation data only" in proc.stderr
    assert not (tmp_path / "c.json").exists()
