"""Train the standard profile's seed-0 networks and write them as the package's shipped networks.

Usage::

    .venv/bin/python scripts/build_pretrained.py            # writes pemd_tutorial/pretrained/
    .venv/bin/python scripts/build_pretrained.py --out /tmp/pretrained
    .venv/bin/python scripts/build_pretrained.py --experiment paper   # pemd_tutorial/pretrained/paper/

With ``--experiment paper`` it runs the paper experiment's seed 0 on its T2w column
(:func:`pemd_tutorial.paper.run_paper_experiment`, standard profile, every row) and writes those
networks and their manifest (target and source test accuracy, validation curve) in the same way.

It runs the main job's training for seed 0 (:func:`pemd_tutorial.experiment.run_experiment` with
the standard profile on the CPU: source only, MCD-L1, MCD-SWD, MCD-pEMD, oracle), so the networks
are the ones behind the seed-0 rows of ``python -m pemd_tutorial``. It writes one model file per
network (:func:`pemd_tutorial.save_model`) and ``manifest.json``: the configuration, this command,
the date, the machine (torch version and CPU instruction set, which decide whether the metrics
reproduce bit for bit), and per network its file, size, sha256, metrics on the target test pairs
and validation curve. ``tests/test_pretrained.py`` reloads every network and checks the metrics.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pemd_tutorial.config import Config  # noqa: E402
from pemd_tutorial.experiment import run_experiment  # noqa: E402
from pemd_tutorial.jsonio import write_json  # noqa: E402
from pemd_tutorial.pretrained import PRETRAINED_NAMES, sha256_file  # noqa: E402

METRIC_KEYS = ("accuracy", "within_one", "epe", "ncc", "source_accuracy", "n_points")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", choices=("main", "paper"), default="main")
    ap.add_argument("--out", default=None, help="output folder (default: the package's pretrained/ folder)")
    args = ap.parse_args(argv)
    if args.experiment == "paper":
        return paper(Path(args.out or ROOT / "pemd_tutorial" / "pretrained" / "paper"))
    args.out = args.out or str(ROOT / "pemd_tutorial" / "pretrained")
    cfg = Config.standard(seed=0, device="cpu")
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        results = run_experiment(cfg, methods=PRETRAINED_NAMES, seeds=(0,), out_dir=None, progress=False,
                                 save_models=tmp, command="scripts/build_pretrained.py")
        out.mkdir(parents=True, exist_ok=True)
        networks = {}
        for name in PRETRAINED_NAMES:
            dst = out / f"{name}.pt"
            shutil.copyfile(Path(tmp) / "seed0" / f"{name}.pt", dst)
            row = results["per_seed"][name][0]
            log = results["logs"][name]["0"]
            curve = [[r["step"], r["val_acc"]] for r in log if r.get("val_acc") is not None]
            networks[name] = {
                "file": dst.name, "bytes": dst.stat().st_size, "sha256": sha256_file(dst),
                "metrics": {k: row[k] for k in METRIC_KEYS if k in row},
                "train_time_s": round(row["train_time_s"], 1),
                "target_val_curve": curve,
            }
    ident = results["per_seed"]["identity"][0]
    manifest = {
        "what": "pemd-tutorial's shipped networks: the standard profile's seed-0 networks of the main job",
        "command": "python scripts/build_pretrained.py",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": cfg.to_dict(),
        "seed": 0,
        "metrics_on": "target test pairs of the main job (data_utils.evaluation_pairs('target', 'test')); "
                      "networks: mean of F1 and F2 probabilities; source_accuracy on the source test pairs",
        "identity_metrics": {k: ident[k] for k in METRIC_KEYS if k in ident},
        "networks": networks,
    }
    write_json(out / "manifest.json", manifest)
    total = sum(n["bytes"] for n in networks.values())
    for name, n in networks.items():
        acc = 100 * n["metrics"]["accuracy"]
        print(f"{name:9s} {n['bytes'] / 1024:6.0f} KiB  target test accuracy {acc:5.1f} %")
    print(f"wrote {out} ({total / 1024:.0f} KiB in all, {results['wall_time_s']:.0f} s)")
    return 0


def _machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads()}


def paper(out: Path) -> int:
    """The paper experiment's seed-0 networks of the T2w column (see the module docstring)."""
    from pemd_tutorial.config import PaperConfig
    from pemd_tutorial.paper import run_paper_experiment
    from pemd_tutorial.pretrained import save_model

    cfg = PaperConfig.standard(device="cpu")
    results = run_paper_experiment(cfg, seeds=(0,), progress=False)
    out.mkdir(parents=True, exist_ok=True)
    column = results["columns"]["t2"]
    networks = {}
    for key, net in results["networks"].items():
        row = key.split("/")[1]
        meta = {"experiment": "paper", "method": row, "contrast": "t2", "seed": 0}
        dst = save_model(net, out / f"{row}.pt", metadata=meta)
        networks[row] = {
            "file": dst.name, "bytes": dst.stat().st_size, "sha256": sha256_file(dst),
            "metrics": {"accuracy": column["per_seed"][row][0],
                        "source_accuracy": column["source_accuracy"][row][0]},
            "train_time_s": round(column["summary"][row]["train_seconds"], 1),
            "val_curve": column["curves"][row]["0"],
        }
    manifest = {
        "what": "pemd-tutorial's shipped networks: the paper experiment's seed-0 networks, T2w column",
        "command": "python scripts/build_pretrained.py --experiment paper",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": cfg.to_dict(),
        "seed": 0,
        "metrics_on": "the fixed T2w test patches (pemd_tutorial.paper.evaluation_set(cfg, 'test', 't2')); "
                      "mean of both heads' probabilities; source_accuracy on the T1w test patches",
        "identity_accuracy": column["per_seed"]["identity"][0],
        "mind_accuracy": column["per_seed"]["mind"][0],
        "networks": networks,
    }
    write_json(out / "manifest.json", manifest)
    for row, n in networks.items():
        acc = 100 * n["metrics"]["accuracy"]
        print(f"{row:15s} {n['bytes'] / 1024:6.0f} KiB  target test accuracy {acc:5.1f} %")
    total = sum(n["bytes"] for n in networks.values()) / 1024
    print(f"wrote {out} ({total:.0f} KiB, {results['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
