"""The lambda protocol's selection rules (benchmarks/tune_lambda.py: choose)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tune():
    spec = importlib.util.spec_from_file_location("tune_lambda", ROOT / "benchmarks" / "tune_lambda.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(seed, lam, target, source, disc):
    return {"seed": seed, "discrepancy": "pemd", "lam": lam, "target_val_acc": target,
            "source_val_acc": source, "target_val_discrepancy": disc}


def test_collapse_rule_best_eligible_and_label_free_choice(tune):
    source_only = [{"seed": 0, "source_val_acc": 0.60}, {"seed": 1, "source_val_acc": 0.62}]
    rows = [
        # lambda 0.1: eligible, low target accuracy, lowest discrepancy
        _run(0, 0.1, 0.10, 0.60, 0.2), _run(1, 0.1, 0.12, 0.61, 0.2),
        # lambda 0.5: eligible (mean drop 6 points), the best eligible
        _run(0, 0.5, 0.30, 0.55, 0.5), _run(1, 0.5, 0.32, 0.55, 0.4),
        # lambda 1: the best target accuracy, but the source accuracy collapsed (drop 21 points)
        _run(0, 1.0, 0.40, 0.40, 2.0), _run(1, 1.0, 0.41, 0.40, 2.1),
    ]
    out = tune.choose(rows, ["pemd"], {"pemd": [0.1, 0.5, 1.0]}, source_only, max_drop=0.10)["pemd"]
    assert out["lam"] == 0.5 and out["mean_target_val_acc"] == pytest.approx(0.31)
    assert out["grid"]["1.0"]["eligible"] is False
    assert out["grid"]["1.0"]["source_drop"] == pytest.approx(0.21)
    assert out["interior"] is True  # a tested lambda on each side of 0.5
    assert out["label_free_lam"] == 0.1 and out["label_free_target_val_acc"] == pytest.approx(0.11)
    # a stricter rule makes 0.5 ineligible too
    strict = tune.choose(rows, ["pemd"], {"pemd": [0.1, 0.5, 1.0]}, source_only, max_drop=0.05)["pemd"]
    assert strict["lam"] == 0.1 and strict["interior"] is False


def test_ties_go_to_the_smaller_lambda(tune):
    source_only = [{"seed": 0, "source_val_acc": 0.6}]
    rows = [_run(0, lam, 0.2, 0.6, 0.3) for lam in (0.1, 0.3, 1.0)]
    chosen = tune.choose(rows, ["pemd"], {"pemd": [0.1, 0.3, 1.0]}, source_only, max_drop=0.1)["pemd"]
    assert chosen["lam"] == 0.1
