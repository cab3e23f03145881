"""Draw docs/img/method.png, the README's one-figure summary of the method.

Uses only the package: the target test pairs of the embedded data, the shipped MCD-pEMD network
(its two heads at the foreground control point where they disagree most, by the projected EMD) and
the projection of both histograms onto the one of the four lines that separates them most, with
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
ANGLES = (0.0, 45.0, 90.0, 135.0)  # the projected EMD's lines; the figure shows the one that sees most


def main() -> None:
    cfg = Config.from_dict({**pretrained_manifest()["config"], "device": "cpu"})
    grid, s = cfg.grid, cfg.control_spacing
    test = make_data(cfg, 0).target_test
    batch = test.batch()
    p1, p2 = predict(load_pretrained("mcd_pemd"), test)
    # the control point inside the brain (its 3x3 neighbourhood all foreground) where the two heads
    # disagree most
    a, b = (x.permute(0, 2, 3, 1).double() for x in (p1, p2))  # (N, Hc, Wc, L)
    inner = -torch.nn.functional.max_pool2d(-batch["mask"].float()[:, None], 3, 1, 1)[:, 0] > 0.5
    d = projected_emd(a, b, grid.shape, step=grid.step, reduction="none") * inner
    n, row, col = np.unravel_index(int(d.argmax()), tuple(d.shape))
    h1, h2 = p1[n, :, row, col].double(), p2[n, :, row, col].double()
    truth = batch["displacement"][n, :, row, col].tolist()

    fig, axes = plt.subplots(1, 5, figsize=(13.5, 3.0), dpi=100,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.22, 1.15]})
    cy, cx = s // 2 + s * row, s // 2 + s * col
    for ax, key, title in ((axes[0], "fixed", "fixed: T1w"), (axes[1], "moving", "moving: T2w")):
        ax.imshow(batch[key][n, 0], cmap="gray")
        ax.plot([cx], [cy], "o", mfc="none", mec="orange", ms=12, mew=2)
        ax.set_title(title + " (○: control point)", fontsize=9)
        ax.axis("off")
    vmax = float(torch.maximum(h1, h2).max())
    plot_histogram(axes[2], h1, grid, title="head F1 at ○", vmax=vmax, mark=truth)
    im = plot_histogram(axes[3], h2, grid, title="head F2 at ○", vmax=vmax, mark=truth)
    fig.colorbar(im, ax=axes[3], shrink=0.85, label="probability")
    axes[2].plot([], [], "x", color="cyan", mew=2, label="true displacement")
    axes[2].legend(fontsize=7, loc="lower left", framealpha=0.8)
    angle = max(ANGLES, key=lambda t: float(projected_emd(h1, h2, grid.shape, angles=(t,), step=grid.step)))
    pos, m = project_histogram(torch.stack([h1, h2]), grid.shape, angle, grid.step)
    x, c1, c2 = pos.numpy(), m[0].cumsum(0).numpy(), m[1].cumsum(0).numpy()
    xe = np.append(x, x[-1] + (x[1] - x[0]))
    c1, c2 = np.append(c1, 1.0), np.append(c2, 1.0)
    ax = axes[4]
    ax.step(xe, c1, where="post", label="F1")
    ax.step(xe, c2, where="post", label="F2")
    ax.fill_between(xe, c1, c2, step="post", color="grey", alpha=0.35, label="area = 1D EMD")
    ax.set_xlabel(f"position on the {angle:g}° line (px)")
    ax.set_ylabel("cumulative mass")
    ax.set_title(f"projected at {angle:g}°", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT} (target test pair {n}, control point row {row}, column {col}; projected EMD "
          f"between the heads {float(d[n, row, col]):.2f} px)")


if __name__ == "__main__":
    main()
