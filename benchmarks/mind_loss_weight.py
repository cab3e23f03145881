"""The weight of the MIND loss (the ``mind_loss`` row), chosen without target labels.

The ``mind_loss`` row fine-tunes the source-only network with ``CE_source + w * MIND-SSD(target)``
(:func:`pemd_tutorial.training.train_similarity`). Choosing ``w`` by MIND-SSD would be circular
(it is the loss), so the score here is the other label-free score of the protocol, **NMI** between
the fixed image and the warped moving image on the unlabelled target *validation* pairs
(:func:`pemd_tutorial.selection.label_free_scores`), with the collapse rule on the source
validation accuracy. One seed (0, the shipped split), the standard profile, per target contrast;
the target validation accuracy is recorded as a reference only.

Usage::

    python benchmarks/mind_loss_weight.py --targets t2 flair   # benchmarks/results/mind_loss_weight.json
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import time
from pathlib import Path

from data_utils import evaluation_pairs
from pemd_tutorial.config import Config
from pemd_tutorial.evaluate import evaluate_model
from pemd_tutorial.experiment import make_data
from pemd_tutorial.jsonio import write_json
from pemd_tutorial.model import RegistrationNet
from pemd_tutorial.selection import collapsed, label_free_scores, source_accuracy
from pemd_tutorial.training import train_similarity, train_source

WEIGHTS = (1.0, 10.0, 100.0)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--targets", nargs="+", default=["t2", "flair"])
    p.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out: dict = {"command": "python benchmarks/mind_loss_weight.py " + " ".join(argv or []),
                 "date": dt.date.today().isoformat(), "weights": a.weights, "seed": a.seed, "targets": {}}
    source_net = None
    for target in a.targets:
        cfg = Config.standard(target_contrast=target, seed=a.seed)
        data = make_data(cfg, a.seed)
        kw = dict(grid=cfg.grid, control_spacing=cfg.control_spacing, size=cfg.image_size)
        source_val = evaluation_pairs("source", "val", cfg.n_val_pairs, **kw).evaluation_view()
        if source_net is None:  # the source network does not depend on the target
            source_net = RegistrationNet(cfg)
            train_source(source_net, data.source_train, cfg, progress=False)
        reference = source_accuracy(source_net, source_val)
        rows = {}
        for w in a.weights:
            t0 = time.perf_counter()
            net = copy.deepcopy(source_net)
            train_similarity(net, data.source_train, data.target_train, cfg, weight=w, progress=False)
            scores = label_free_scores(net, data.target_val_images)
            src = source_accuracy(net, source_val)
            ref = evaluate_model(net, data.target_val, cfg)["accuracy"]  # reference only
            rows[str(w)] = {**scores, "source_val_accuracy": src, "collapsed": collapsed(reference, src),
                            "target_val_accuracy": ref, "seconds": time.perf_counter() - t0}
            print(f"{target} w={w:g}: NMI {scores['nmi']:.4f}, MIND-SSD {scores['mind_ssd']:.4f}, source "
                  f"{100 * src:.1f} %, target val {100 * ref:.1f} % (reference)", flush=True)
        eligible = [w for w in a.weights if not rows[str(w)]["collapsed"]]
        chosen = max(eligible, key=lambda w: rows[str(w)]["nmi"]) if eligible else None
        out["targets"][target] = {"source_val_accuracy": reference, "rows": rows, "chosen": chosen}
        print(f"{target}: chosen weight {chosen}", flush=True)
    write_json(Path(__file__).resolve().parent / "results" / "mind_loss_weight.json", out)
    return out


if __name__ == "__main__":
    main()
