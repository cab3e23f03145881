"""Train the standard profile's seed-0 networks and write them as the package's shipped networks.

Usage::

    .venv/bin/python scripts/build_pretrained.py            # writes pemd_tutorial/pretrained/
    .venv/bin/python scripts/build_pretrained.py --out /tmp/pretrained

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
import json
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
from pemd_tutorial.pretrained import PRETRAINED_NAMES, sha256_file  # noqa: E402

METRIC_KEYS = ("accuracy", "within_one", "epe", "ncc", "source_accuracy", "n_points")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "pemd_tutorial" / "pretrained"), help="output folder")
    args = ap.parse_args(argv)
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
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "torch_threads": torch.get_num_threads()},
        "config": cfg.to_dict(),
        "seed": 0,
        "metrics_on": "target test pairs of the main job (data_utils.evaluation_pairs('target', 'test')); "
                      "networks: mean of F1 and F2 probabilities; source_accuracy on the source test pairs",
        "identity_metrics": {k: ident[k] for k in METRIC_KEYS if k in ident},
        "networks": networks,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(n["bytes"] for n in networks.values())
    for name, n in networks.items():
        acc = 100 * n["metrics"]["accuracy"]
        print(f"{name:9s} {n['bytes'] / 1024:6.0f} KiB  target test accuracy {acc:5.1f} %")
    print(f"wrote {out} ({total / 1024:.0f} KiB in all, {results['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
