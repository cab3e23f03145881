"""Which label-free score picks λ best? A table from the recorded λ sweeps.

Reads the sweeps written by ``benchmarks/tune_lambda.py`` (dense main job) and
``benchmarks/tune_lambda_paper.py`` (patch experiment), and for every label-free score of
:data:`pemd_tutorial.selection.SCORES` makes the pick of :func:`pemd_tutorial.selection.choose_lambda`
**per seed and discrepancy** (each seed is one selection problem a user would face), then compares it
with the λ that the target validation labels would pick among the same eligible values:

* ``agree``: how often the score picks the labels' λ;
* ``regret``: the mean target validation accuracy lost against the labels' pick (points).

    python benchmarks/selection_report.py pemd_tutorial/results/lambda_standard_labelfree.json \
        benchmarks/results/lambda_standard_flair.json benchmarks/results/lambda_paper_labelfree.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pemd_tutorial.jsonio import write_json  # noqa: E402
from pemd_tutorial.selection import SCORES, choose_lambda  # noqa: E402


def problems(record: dict) -> list[dict]:
    """Every (sweep, seed, discrepancy) selection problem of a record: ``{lam: row}`` and the reference."""
    out = []
    if "runs" in record:  # the dense tuner: one row per (seed, discrepancy, λ)
        src = {r["seed"]: r["source_val_acc"] for r in record["source_only"]}
        for seed, reference in src.items():
            names = sorted({r["discrepancy"] for r in record["runs"]})
            for name in names:
                table = {r["lam"]: r for r in record["runs"]
                         if r["seed"] == seed and r["discrepancy"] == name}
                out.append({"name": f"{name} (seed {seed})", "table": table, "reference": reference,
                            "drop": record.get("max_source_drop", 0.10)})
    else:  # the patch tuner: one seed, rows with a grid
        reference = record["source_only"]["source_val"]
        for row, entry in record["rows"].items():
            table = {float(k): {**v, "target_val_acc": v["target_val"]} for k, v in entry["grid"].items()}
            out.append({"name": f"{row} (seed {record['config']['seed']})", "table": table,
                        "reference": reference, "drop": 0.10})
    return out


def evaluate(records: dict[str, dict]) -> dict:
    """Per score: agreements, mean regret and the picks of every problem."""
    result = {score: {"agree": 0, "regret": [], "picks": {}} for score in SCORES}
    result["n_problems"] = 0
    for label, record in records.items():
        for prob in problems(record):
            table, ref = prob["table"], prob["reference"]
            ok = {lam: r for lam, r in table.items() if ref - r["source_val_acc"] <= prob["drop"]}
            if not ok:
                continue
            result["n_problems"] += 1
            best = max(sorted(ok), key=lambda lam: ok[lam]["target_val_acc"])
            for score in SCORES:
                lam = choose_lambda(table, score, ref, max_source_drop=prob["drop"])
                r = result[score]
                r["agree"] += lam == best
                r["regret"].append(100 * (ok[best]["target_val_acc"] - ok[lam]["target_val_acc"]))
                r["picks"][f"{label}: {prob['name']}"] = {"lam": lam, "labels_lam": best}
    return result


def markdown(result: dict) -> str:
    n = result["n_problems"]
    lines = ["| label-free score | picks the labels' λ | mean regret (points) | worst regret (points) |",
             "|---|---:|---:|---:|"]
    for score in SCORES:
        r = result[score]
        reg = r["regret"]
        lines.append(f"| {score} | {r['agree']} of {n} | {sum(reg) / len(reg):.1f} | {max(reg):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+")
    ap.add_argument("--out", default=None, help="also write the table and the picks as JSON")
    args = ap.parse_args(argv)
    records = {Path(p).stem: json.loads(Path(p).read_text()) for p in args.records}
    result = evaluate(records)
    print(markdown(result))
    if args.out:
        write_json(args.out, {"records": args.records, **result, "markdown": markdown(result)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
