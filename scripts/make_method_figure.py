"""Draw docs/img/method.png, the README's one-figure summary of the method.

Uses only the package: a target test pair of the embedded data, the shipped source-only network
(its two heads at one control point) and the projection of both histograms at 45 degrees with
their cumulative sums. Run: ``.venv/bin/python scripts/make_method_figure.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pemd_tutorial.config import Config  # noqa: E402
from pemd_tutorial.emd import project_histogram, projected_emd  # noqa: E402
from pemd_tutorial.evaluate import predict  # noqa: E402
from pemd_tutorial.experiment import make_data  # noqa: E402
from pemd_tutorial.figures import plot_histogram  # noqa: E402
from pemd_tutorial.pretrained import load_pretrained, pretrained_manifest  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "method.png"
ANGLE = 45.0


def main() -> None:
    cfg = Config.from_dict({**pretrained_manifest()["config"], "device": "cpu"})
    grid, s = cfg.grid, cfg.control_spacing
    test = make_data(cfg, 0).target_test
    batch = test.batch()
    p1, p2 = predict(load_pretrained("source"), test)
    # the foreground control point of pair 0 where the heads disagree most (by the projected EMD)
    a, b = (x[0].permute(1, 2, 0).double() for x in (p1, p2))  # (Hc, Wc, L)
    tv = projected_emd(a, b, grid.shape, step=grid.step, reduction="none") * batch["mask"][0]
    tv[:2], tv[-2:], tv[:, :2], tv[:, -2:] = 0, 0, 0, 0  # a point away from the image border
    row, col = divmod(int(tv.argmax()), tv.shape[1])
    h1, h2 = p1[0, :, row, col].double(), p2[0, :, row, col].double()
    truth = batch["displacement"][0, :, row, col].tolist()

    fig, axes = plt.subplots(1, 5, figsize=(13.5, 2.9), dpi=100)
    cy, cx = s // 2 + s * row, s // 2 + s * col
    for ax, key, title in ((axes[0], "fixed", "fixed: T1w"), (axes[1], "moving", "moving: T2w")):
        ax.imshow(batch[key][0, 0], cmap="gray")
        ax.plot([cx], [cy], "o", mfc="none", mec="orange", ms=12, mew=2)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    vmax = float(torch.maximum(h1, h2).max())
    plot_histogram(axes[2], h1, grid, title="head F1 at the circled point", vmax=vmax, mark=truth)
    plot_histogram(axes[3], h2, grid, title="head F2 (same point)", vmax=vmax, mark=truth)
    pos, m = project_histogram(torch.stack([h1, h2]), grid.shape, ANGLE, grid.step)
    x, c1, c2 = pos.numpy(), m[0].cumsum(0).numpy(), m[1].cumsum(0).numpy()
    xe = np.append(x, x[-1] + (x[1] - x[0]))
    c1, c2 = np.append(c1, 1.0), np.append(c2, 1.0)
    ax = axes[4]
    ax.step(xe, c1, where="post", label="F1")
    ax.step(xe, c2, where="post", label="F2")
    ax.fill_between(xe, c1, c2, step="post", color="grey", alpha=0.35, label="|C_F1 − C_F2|")
    ax.set_xlabel(f"position on the {ANGLE:g}° line (px)")
    ax.set_ylabel("cumulative mass")
    ax.set_title(f"both projected at {ANGLE:g}°: area = 1D EMD", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT} (pair 0, control point row {row}, column {col})")


if __name__ == "__main__":
    main()
