"""The heads MCD relies on: does a design whose heads differ from the start change what MCD gains?

Both heads of :class:`pemd_tutorial.model.RegistrationNet` are ``tau * V + MLP(V)`` on the same cost
volume ``V`` (``Config.head_residual=True``): they start near the arg-max of the correlation and
nearly identical, so step B of MCD has to create their disagreement. The other design
(``head_residual=False``) drops the shared ``tau * V`` term: each head is its own MLP of ``V``,
randomly initialised, so the heads differ from the start. Measured once (standard profile, seed 0,
the shipped test block, T2w target, MCD-pEMD with its label-free λ 0.5): the heads' total variation
on the target test foreground points before and after adaptation, and the target test accuracy
of the source-only and the adapted network. The residual design's networks are the shipped ones
(``pemd_tutorial.pretrained``), trained by the same code; the other design is trained here.

Usage::

    python benchmarks/head_design.py    # benchmarks/results/head_design.json
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from pathlib import Path

import torch

from pemd_tutorial.config import Config
from pemd_tutorial.evaluate import evaluate_model, predict
from pemd_tutorial.experiment import make_data
from pemd_tutorial.jsonio import write_json
from pemd_tutorial.model import RegistrationNet
from pemd_tutorial.pretrained import load_pretrained
from pemd_tutorial.training import adapt, control_point_rows, train_source


def heads_tv(model, pairs) -> float:
    """Mean total variation between F1's and F2's histograms over the foreground control points."""
    p1, p2 = predict(model, pairs)
    mask = pairs.batch()["mask"]
    a, b = control_point_rows(p1, mask), control_point_rows(p2, mask)
    return float(0.5 * (a - b).abs().sum(dim=1).mean())


def main() -> dict:
    torch.manual_seed(0)
    out: dict = {"command": "python benchmarks/head_design.py", "date": dt.date.today().isoformat(),
                 "designs": {}}
    for residual in (True, False):
        cfg = Config.standard(head_residual=residual, seed=0)
        data = make_data(cfg, 0)
        t0 = time.perf_counter()
        if residual:  # the shipped networks: the standard profile, seed 0, this very code
            source, adapted = load_pretrained("source"), load_pretrained("mcd_pemd")
        else:
            source = RegistrationNet(cfg)
            train_source(source, data.source_train, cfg, progress=False)
            adapted = copy.deepcopy(source)
            adapt(adapted, data.source_train, data.target_train, cfg, discrepancy="pemd", progress=False)
        row = {"tv_before": heads_tv(source, data.target_test),
               "tv_after": heads_tv(adapted, data.target_test),
               "source_only_accuracy": evaluate_model(source, data.target_test, cfg)["accuracy"],
               "mcd_pemd_accuracy": evaluate_model(adapted, data.target_test, cfg)["accuracy"],
               "seconds": time.perf_counter() - t0}
        row["gain"] = row["mcd_pemd_accuracy"] - row["source_only_accuracy"]
        name = "tau*V + MLP(V) (shared term)" if residual else "MLP(V) alone"
        out["designs"][name] = row
        print(f"{name}: heads' TV {row['tv_before']:.3f} -> {row['tv_after']:.3f}; accuracy "
              f"{100 * row['source_only_accuracy']:.1f} -> {100 * row['mcd_pemd_accuracy']:.1f} % "
              f"({100 * row['gain']:+.1f})", flush=True)
    write_json(Path(__file__).resolve().parent / "results" / "head_design.json", out)
    return out


if __name__ == "__main__":
    main()
