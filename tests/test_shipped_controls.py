"""The shipped control results of notebook 03 (section 6) are the runs they claim to be."""

import json
from pathlib import Path

import pytest

from pemd_tutorial.config import Config
from pemd_tutorial.discrepancies import SWD_RESCALE
from pemd_tutorial.jsonio import read_shipped_results
from pemd_tutorial.stats import slice_counts_difference

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "results" / "adaptation_pays"


def test_rescaled_swd_control_starts_from_the_main_jobs_networks():
    control = read_shipped_results("main_swd_rescaled_control_cpu")
    main = read_shipped_results("main_standard_cpu")
    assert control["seeds"] == main["seeds"] == [0, 1, 2]
    # the same seeds give the same source-only network and the same MCD-SWD: the control differs
    # from MCD-SWD in step C only
    for m in ("source", "mcd_swd"):
        assert [r["accuracy"] for r in control["per_seed"][m]] == [r["accuracy"] for r in main["per_seed"][m]]
    cfg = Config.from_dict(control["config"])
    assert cfg.lam("swd_rescaled") == pytest.approx(cfg.lam("swd") / SWD_RESCALE)
    assert all("per_slice" in r for r in control["per_seed"]["mcd_swd_rescaled"])


@pytest.mark.slow  # reads 10 per-seed files
def test_geometry_control_rows_are_recomputed_from_their_runs():
    t2 = read_shipped_results("adaptation_pays")["targets"]["t2"]
    seeds = t2["seeds"]
    runs = {s: json.loads((RUNS / f"seed{s}_t2.json").read_text()) for s in seeds}
    extra = {s: json.loads((RUNS / f"seed{s}_t2_rerun_geometry.json").read_text()) for s in seeds}
    ref = [runs[s]["per_seed"]["mcd_pemd"][0] for s in seeds]
    rows = {m: [extra[s]["per_seed"][m][0] for s in seeds] for m in ("mcd_l1", "mcd_pemd_shuffled")}
    for s in seeds:
        assert extra[s]["config"]["test_fold"] == s and extra[s]["machine"] == runs[s]["machine"]
    for m, r in rows.items():
        assert t2["rows"][m]["accuracy"] == pytest.approx(sum(x["accuracy"] for x in r) / len(r))
        again = slice_counts_difference(r, ref)
        shipped = t2["rows"][m]["vs_mcd_pemd"]
        assert (again["low"], again["high"]) == pytest.approx((shipped["low"], shipped["high"]))
    again = slice_counts_difference(rows["mcd_pemd_shuffled"], rows["mcd_l1"])
    shipped = t2["mcd_pemd_shuffled_vs_mcd_l1"]
    assert (again["difference"], again["low"], again["high"]) == pytest.approx(
        (shipped["difference"], shipped["low"], shipped["high"]))
