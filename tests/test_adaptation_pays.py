"""The shipped table of "When does adaptation pay?" agrees with the per-seed results it was made from."""

import json
from pathlib import Path

import pytest

from pemd_tutorial.jsonio import read_shipped_results
from pemd_tutorial.stats import slice_counts_difference

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "results" / "adaptation_pays"


@pytest.mark.slow  # over 3.3 s in make check on a busy 2-core machine
def test_shipped_table_is_recomputed_from_the_per_seed_runs():
    table = read_shipped_results("adaptation_pays")
    assert set(table["targets"]) == {"t2", "flair", "flair_lesion"}
    for target, entry in table["targets"].items():
        assert entry["seeds"] == [0, 1, 2, 3, 4] and entry["folds"] == [0, 1, 2, 3, 4]
        runs = {s: json.loads((RUNS / f"seed{s}_{target}.json").read_text()) for s in entry["seeds"]}
        for s, r in runs.items():
            assert r["config"]["target_contrast"] == target and r["config"]["test_fold"] == s
        ref = [runs[s]["per_seed"][table["reference"]][0] for s in entry["seeds"]]
        for m in ("inverted", "randomized", "mcd_pemd_randomized"):
            rows = [runs[s]["per_seed"][m][0] for s in entry["seeds"]]
            mean = sum(r["accuracy"] for r in rows) / len(rows)
            assert entry["rows"][m]["accuracy"] == pytest.approx(mean)
            again = slice_counts_difference(rows, ref)  # same seed of the resampling: the same interval
            shipped = entry["rows"][m]["vs_" + table["reference"]]
            assert (again["low"], again["high"]) == pytest.approx((shipped["low"], shipped["high"]))


def test_unknown_shipped_results_are_named():
    with pytest.raises(ValueError, match="adaptation_pays"):
        read_shipped_results("nope")
    with pytest.raises(ValueError, match="without folders"):
        read_shipped_results("../x")
