"""The MIND baseline's softmax temperature, chosen without target labels like every λ.

For each target contrast, the MIND baseline (:func:`pemd_tutorial.mind.mind_baseline`) is run on
the fixed *validation* pairs with each temperature of a grid and scored with the label-free scores
of :func:`pemd_tutorial.selection.registration_scores` (MIND-SSD and NMI after warping the moving
image by the expected displacement); the protocol's score, MIND-SSD, picks. The validation
accuracy and end-point error are recorded beside them as a reference only. The temperature cannot
change the label accuracy (the arg-max label of ``softmax(-cost / T)`` is the same for every T):
only the end-point error and the image similarity depend on it.

Usage::

    python benchmarks/mind_temperature.py   # writes benchmarks/results/mind_temperature.json
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from data_utils import evaluation_pairs
from pemd_tutorial.config import Config
from pemd_tutorial.evaluate import evaluate_probs
from pemd_tutorial.jsonio import write_json
from pemd_tutorial.mind import mind_baseline
from pemd_tutorial.selection import registration_scores

GRID = (0.005, 0.01, 0.02, 0.05)
TARGETS = ("t2", "flair", "flair_lesion")


def main() -> dict:
    out: dict = {"command": "python benchmarks/mind_temperature.py", "date": dt.date.today().isoformat(),
                 "grid": list(GRID), "targets": {}}
    for target in TARGETS:
        cfg = Config.standard(target_contrast=target)
        val = evaluation_pairs("target", "val", cfg.n_val_pairs, grid=cfg.grid,
                               control_spacing=cfg.control_spacing, size=cfg.image_size,
                               moving_contrast=target)
        rows = {}
        for t in GRID:
            probs = mind_baseline(val, cfg, temperature=t)
            ref = evaluate_probs(probs, val.evaluation_view(), cfg)  # reference only: never used to choose
            rows[str(t)] = {**registration_scores(probs, val), "val_accuracy": ref["accuracy"],
                            "val_epe": ref["epe"]}
            print(f"{target} T={t}: MIND-SSD {rows[str(t)]['mind_ssd']:.4f}, NMI {rows[str(t)]['nmi']:.4f}, "
                  f"val accuracy {100 * ref['accuracy']:.1f} %, EPE {ref['epe']:.2f} px")
        chosen = min(GRID, key=lambda t: rows[str(t)]["mind_ssd"])
        out["targets"][target] = {"scores": rows, "chosen": chosen}
        print(f"{target}: chosen T = {chosen}")
    write_json(Path(__file__).resolve().parent / "results" / "mind_temperature.json", out)
    return out


if __name__ == "__main__":
    main()
