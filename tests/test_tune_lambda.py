"""The λ protocol of benchmarks/tune_lambda.py (choose): label-free picks, the labels' pick beside."""

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


def _run(seed, lam, target, source, mind):
    return {"seed": seed, "discrepancy": "pemd", "lam": lam, "target_val_acc": target,
            "source_val_acc": source, "target_val_discrepancy": 0.3, "mind_ssd": mind,
            "nmi": 1.1 - mind, "im": 1.0, "snd": 3.0}


def test_label_free_pick_uses_the_collapse_rule_and_reports_the_labels_pick(tune):
    source_only = [{"seed": 0, "source_val_acc": 0.60}, {"seed": 1, "source_val_acc": 0.62}]
    rows = [
        # lambda 0.1: eligible, low target accuracy, the best MIND-SSD of the eligible ones
        _run(0, 0.1, 0.10, 0.60, 0.12), _run(1, 0.1, 0.12, 0.61, 0.12),
        # lambda 0.5: eligible (mean drop 6 points), the best target accuracy of the eligible ones
        _run(0, 0.5, 0.30, 0.55, 0.14), _run(1, 0.5, 0.32, 0.55, 0.14),
        # lambda 1: best on everything, but the source accuracy collapsed (drop 21 points)
        _run(0, 1.0, 0.40, 0.40, 0.05), _run(1, 1.0, 0.41, 0.40, 0.05),
    ]
    out = tune.choose(rows, ["pemd"], {"pemd": [0.1, 0.5, 1.0]}, source_only, max_drop=0.10)["pemd"]
    assert out["label_free"]["mind_ssd"]["lam"] == 0.1
    assert out["label_free"]["mind_ssd"]["target_val_acc"] == pytest.approx(0.11)
    assert out["label_free"]["nmi"]["lam"] == 0.1
    assert out["by_target_labels"]["lam"] == 0.5
    assert out["grid"]["1.0"]["eligible"] is False
    assert out["interior"]["mind_ssd"] is False
    # a looser rule lets the collapsing lambda win on the image score
    loose = tune.choose(rows, ["pemd"], {"pemd": [0.1, 0.5, 1.0]}, source_only, max_drop=0.25)["pemd"]
    assert loose["label_free"]["mind_ssd"]["lam"] == 1.0


def test_a_grid_where_everything_collapses_is_reported_not_picked(tune):
    source_only = [{"seed": 0, "source_val_acc": 0.9}]
    rows = [_run(0, lam, 0.2, 0.3, 0.1) for lam in (0.1, 1.0)]
    out = tune.choose(rows, ["pemd"], {"pemd": [0.1, 1.0]}, source_only, max_drop=0.1)["pemd"]
    assert "label_free" not in out and "every λ of pemd" in out["error"]


def test_a_lambda_is_judged_only_when_every_seed_has_run(tune):
    source_only = [{"seed": 0, "source_val_acc": 0.6}, {"seed": 1, "source_val_acc": 0.6}]
    rows = [_run(0, 0.1, 0.2, 0.6, 0.1), _run(0, 0.3, 0.2, 0.6, 0.2), _run(1, 0.3, 0.2, 0.6, 0.2)]
    out = tune.choose(rows, ["pemd"], {"pemd": [0.1, 0.3]}, source_only, max_drop=0.1)["pemd"]
    assert list(out["grid"]) == ["0.3"]


@pytest.mark.parametrize("target, sweep", [("t2", "lambda_standard_labelfree.json"),
                                           ("flair", "lambda_standard_flair.json")])
def test_standard_lambdas_are_the_label_free_choice_of_the_recorded_sweep(target, sweep):
    import json

    from pemd_tutorial.config import STANDARD_LAMBDAS_BY_TARGET, Config

    # the T2w sweep ships with the package (notebook 03 prints its grid)
    folder = "pemd_tutorial" if sweep == "lambda_standard_labelfree.json" else "benchmarks"
    record = json.loads((ROOT / folder / "results" / sweep).read_text())
    assert record["config"]["target_contrast"] == target and record["seeds"] == [0, 1, 2]
    for name, entry in record["chosen"].items():
        assert entry["label_free"]["mind_ssd"]["lam"] == STANDARD_LAMBDAS_BY_TARGET[target][name], name
        assert Config.standard(target_contrast=target).lam(name) == entry["label_free"]["mind_ssd"]["lam"]
