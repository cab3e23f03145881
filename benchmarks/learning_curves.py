"""Accuracy against wall time on this machine, for choosing a training recipe by measurement.

Each variant trains one network with the package's own engine (:func:`pemd_tutorial.training.train_source`
or :func:`~pemd_tutorial.training.train_oracle`) in chunks of ``--every`` steps, resuming from its
checkpoint between chunks (a resumed run is bit-identical to an uninterrupted one), and records
after each chunk the training seconds so far (pair generation included, evaluation excluded) and
the accuracy on the fixed *validation* pairs. The test pairs are never touched.

Paper experiment (the slides' ConcatNet, 25-class patches)::

    python benchmarks/learning_curves.py paper --steps 3000 --every 250 \
        --variant fresh:{} --variant pool2000:'{"n_train": 2000}' --variant scale0.1:'{"logit_scale": 0.1}'

Dense main job (:class:`~pemd_tutorial.model.RegistrationNet`; the accuracy of the classical MIND
baseline on the same validation pairs is recorded as a reference)::

    python benchmarks/learning_curves.py main --oracle --steps 1800 --every 200 \
        --variant g8-16:{} --variant g16-32:'{"channels": [16, 32]}'

A variant is ``name:JSON`` of :class:`~pemd_tutorial.config.PaperConfig` (or
:class:`~pemd_tutorial.config.Config`) fields over the standard profile; ``--oracle`` trains on
labelled target (T2w) pairs instead of the T1w source pairs. Writes
``benchmarks/results/learning_curves_<experiment>[_<tag>].json``; ``--plot`` draws every results
file of the experiment into ``docs/img/learning_curves_<experiment>.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from data_utils import PairSampler, evaluation_pairs, make_pairs
from pemd_tutorial.config import Config, PaperConfig
from pemd_tutorial.evaluate import pairs_accuracy, predict
from pemd_tutorial.jsonio import write_json
from pemd_tutorial.mind import mind_baseline
from pemd_tutorial.model import ConcatNet, RegistrationNet
from pemd_tutorial.paper import evaluation_set, patch_accuracy, training_pairs
from pemd_tutorial.training import train_oracle, train_source

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


def _dense_accuracy(probs, val) -> float:
    return pairs_accuracy(probs, val)


def dense_setup(overrides: dict, oracle: bool):
    """The main job's network, training pairs and validation pairs (and MIND's accuracy on them)."""
    for key in ("channels",):
        if isinstance(overrides.get(key), list):
            overrides[key] = tuple(overrides[key])
    cfg = Config.standard(**overrides)
    kw = {"grid": cfg.grid, "control_spacing": cfg.control_spacing, "size": cfg.image_size,
          "max_displacement": cfg.max_displacement, "smoothness": cfg.smoothness}
    domain = "target" if oracle else "source"
    val = evaluation_pairs(domain, "val", cfg.n_val_pairs, **kw).evaluation_view()
    if cfg.n_train_pairs is None:
        pairs = PairSampler(domain, "train", **kw)
    else:
        pairs = make_pairs(domain, "train", cfg.n_train_pairs, seed=101 if domain == "source" else 202, **kw)
    pairs = pairs.evaluation_view() if oracle else pairs
    reference = _dense_accuracy(mind_baseline(val, cfg), val)

    def accuracy(net) -> float:
        return _dense_accuracy(sum(predict(net, val)), val)

    return cfg, RegistrationNet(cfg), pairs, val, accuracy, reference


def paper_setup(overrides: dict, oracle: bool, contrast: str):
    for key in ("extractor_channels", "classifier_channels"):
        if isinstance(overrides.get(key), list):
            overrides[key] = tuple(overrides[key])
    cfg = PaperConfig.standard(**overrides)
    domain = contrast if oracle else "t1"
    val = evaluation_set(cfg, "val", domain)
    pairs = training_pairs(cfg, domain, labelled=True)
    return cfg, ConcatNet(cfg), pairs, val, (lambda net: patch_accuracy(net, val)), None


def curve(experiment: str, overrides: dict, steps: int, every: int, oracle: bool, contrast: str) -> dict:
    if experiment == "main":
        cfg, net, pairs, val, accuracy, reference = dense_setup(overrides, oracle)
    else:
        cfg, net, pairs, val, accuracy, reference = paper_setup(overrides, oracle, contrast)
    train = train_oracle if oracle else train_source
    points = [{"step": 0, "seconds": 0.0, "val_acc": accuracy(net), "train_acc": None}]
    seconds = 0.0
    with tempfile.TemporaryDirectory() as ckpt:
        for done in range(every, steps + 1, every):
            t0 = time.perf_counter()
            log = train(net, pairs, cfg, steps=done, checkpoint_dir=ckpt, resume=True, progress=False)
            seconds += time.perf_counter() - t0
            # the training batches' accuracy over the chunk: near 100 % with a low validation
            # accuracy means the network memorises its training pairs
            train_acc = sum(r["train_acc"] for r in log[-every:]) / every
            points.append({"step": done, "seconds": seconds, "val_acc": accuracy(net),
                           "train_acc": train_acc})
            print(f"  step {done:5d}  {seconds:6.1f} s  val {100 * points[-1]['val_acc']:5.1f} %  "
                  f"train batches {100 * train_acc:5.1f} %", flush=True)
    return {"config": cfg.to_dict(), "points": points, "mind_val_acc": reference}


def plot(experiment: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"learning_curves_{experiment}_*.json"))]
    kinds = sorted({bool(r["oracle"]) for r in runs})
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), dpi=100, squeeze=False)
    axes = {kind: ax for kind, ax in zip(kinds, axes[0], strict=True)}
    for data in runs:
        ax = axes[bool(data["oracle"])]
        for name, run in data["variants"].items():
            pts = run["points"]
            line, = ax.plot([p["seconds"] for p in pts], [100 * p["val_acc"] for p in pts], marker=".",
                            label=name)
            if run.get("mind_val_acc") is not None and not any(t.get_text() == "MIND" for t in ax.texts):
                ax.axhline(100 * run["mind_val_acc"], color="k", ls="--", lw=1)
                ax.text(0, 100 * run["mind_val_acc"], "MIND", va="bottom", fontsize=8)
    what = "patch network" if experiment == "paper" else "dense network"
    titles = {False: f"{what}, source only: T1w validation accuracy",
              True: f"{what}, oracle: T2w validation accuracy"}
    for kind, ax in axes.items():
        ax.set_title(titles[kind], fontsize=10)
        ax.set_xlabel("training time on 2 CPU cores (s)")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = ROOT.parent / "docs" / "img" / f"learning_curves_{experiment}.png"
    fig.savefig(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment", choices=("paper", "main"))
    p.add_argument("--variant", action="append", default=[], metavar="NAME:JSON")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--oracle", action="store_true", help="train on labelled target pairs (the oracle)")
    p.add_argument("--contrast", default="t2", help="target contrast of --oracle (default t2)")
    p.add_argument("--tag", default="", help="suffix of the results file")
    p.add_argument("--plot", action="store_true", help="only draw the figure from the results files")
    args = p.parse_args()
    if args.plot:
        print(f"wrote {plot(args.experiment)}")
        return
    if args.steps < args.every or args.every < 1:
        p.error("--steps must be >= --every >= 1")
    variants = {}
    for spec in args.variant or ["fresh:{}"]:
        name, sep, text = spec.partition(":")
        if not sep:
            p.error(f"--variant must be NAME:JSON, got {spec!r}")
        variants[name] = json.loads(text or "{}")
    tag = f"_{args.tag}" if args.tag else ""
    out = RESULTS / f"learning_curves_{args.experiment}{tag}.json"
    previous = json.loads(out.read_text())["variants"] if out.is_file() else {}
    results = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
        "oracle": args.oracle,
        "contrast": args.contrast if args.oracle else "t1",
        "variants": previous,  # a rerun replaces the variants it names and keeps the others
    }
    for name, overrides in variants.items():
        print(f"{name}: {overrides}", flush=True)
        results["variants"][name] = curve(args.experiment, overrides, args.steps, args.every, args.oracle,
                                          args.contrast)
        write_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
