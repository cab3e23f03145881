"""Benchmark of pemd_tutorial.emd: quality against the exact EMD and speed on the CPU.

Usage::

    python benchmarks/bench_emd.py                     # writes benchmarks/results/emd_cpu.json

Quality: Spearman and Pearson correlation between projected_emd (2, 4, 8 angles) and the exact
EMD (POT ``emd2``, Euclidean ground cost) on random peaked histogram pairs. CPU speed: time per
pair of POT's exact ``emd2`` (timed on a subset of pairs, per pair) against projected_emd on a
batch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pemd_tutorial.emd import exact_emd, projected_emd  # noqa: E402
from pemd_tutorial.jsonio import write_json  # noqa: E402

ANGLE_SETS = {
    2: [0.0, 90.0],
    4: [0.0, 45.0, 90.0, 135.0],
    8: [0.0, 22.5, 45.0, 67.5, 90.0, 112.5, 135.0, 157.5],
}


def peaked_histograms(n: int, side: int, seed: int) -> torch.Tensor:
    """``(n, side * side)`` float64 histograms: a Gaussian bump (random centre inside the grid,
    width 0.5-2 labels) plus 10% of a random background, like a classifier's softmax output."""
    g = torch.Generator().manual_seed(seed)
    r = torch.arange(side, dtype=torch.float64)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    centre = torch.rand(n, 2, generator=g, dtype=torch.float64) * (side - 1)
    sigma = 0.5 + 1.5 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    d2 = (xx - centre[:, 0, None, None]) ** 2 + (yy - centre[:, 1, None, None]) ** 2
    bump = torch.exp(-d2 / (2 * sigma**2)).reshape(n, -1)
    bump = bump / bump.sum(1, keepdim=True)
    background = torch.rand(n, side * side, generator=g, dtype=torch.float64) ** 4
    background = background / background.sum(1, keepdim=True)
    return 0.9 * bump + 0.1 * background


def quality(n_pairs: int, sides: list[int]) -> dict:
    from scipy.stats import pearsonr, spearmanr

    out = {}
    for side in sides:
        p = peaked_histograms(n_pairs, side, seed=side)
        q = peaked_histograms(n_pairs, side, seed=1000 + side)
        exact = exact_emd(p, q, (side, side)).numpy()
        row = {"n_pairs": n_pairs}
        for k, angles in ANGLE_SETS.items():
            approx = projected_emd(p, q, (side, side), angles=angles, reduction="none").numpy()
            row[f"{k}_angles"] = {
                "spearman": float(spearmanr(approx, exact).statistic),
                "pearson": float(pearsonr(approx, exact).statistic),
                "mean_ratio_to_exact": float(np.mean(approx / exact)),
                "max_ratio_to_exact": float(np.max(approx / exact)),
            }
        out[f"{side}x{side}"] = row
    return out


def cpu_speed(n_batch: int, n_pot: int, sides: list[int], reps: int = 5) -> dict:
    import ot

    out = {}
    for side in sides:
        shape = (side, side)
        p = peaked_histograms(n_batch, side, seed=7).float()
        q = peaked_histograms(n_batch, side, seed=8).float()
        pts = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="xy"), -1)
        pts = pts.reshape(-1, 2).double().numpy()
        cost = ot.dist(pts, pts, metric="euclidean")
        p64, q64 = p[:n_pot].double().numpy(), q[:n_pot].double().numpy()
        p64 /= p64.sum(1, keepdims=True)
        q64 /= q64.sum(1, keepdims=True)
        t0 = time.perf_counter()
        for i in range(n_pot):
            ot.emd2(p64[i], q64[i], cost)
        pot_per_pair = (time.perf_counter() - t0) / n_pot
        projected_emd(p[:1000], q[:1000], shape, validate=False)  # warm-up (operator cache)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            projected_emd(p, q, shape, validate=False)
            times.append(time.perf_counter() - t0)
        pemd_per_pair = statistics.median(times) / n_batch
        pg, qg = p.clone().requires_grad_(), q.clone().requires_grad_()
        times_fb = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.autograd.grad(projected_emd(pg, qg, shape, validate=False), (pg, qg))
            times_fb.append(time.perf_counter() - t0)
        out[f"{side}x{side}"] = {
            "pot_emd2_pairs_timed": n_pot,
            "pot_emd2_s_per_pair": pot_per_pair,
            "pemd_batch_pairs": n_batch,
            "pemd_forward_s_per_pair": pemd_per_pair,
            "pemd_forward_backward_s_per_pair": statistics.median(times_fb) / n_batch,
            "speedup_forward_vs_pot": pot_per_pair / pemd_per_pair,
            "torch_threads": torch.get_num_threads(),
        }
    return out


def print_tables(res: dict) -> None:
    if "quality" in res:
        print("\nQuality: correlation with the exact EMD (POT emd2)")
        print(f"{'grid':>6} {'angles':>6} {'Spearman':>9} {'Pearson':>8} {'mean pEMD/EMD':>14}")
        for grid, row in res["quality"].items():
            for k in ANGLE_SETS:
                r = row[f"{k}_angles"]
                print(f"{grid:>6} {k:>6} {r['spearman']:9.4f} {r['pearson']:8.4f} "
                      f"{r['mean_ratio_to_exact']:14.3f}")
    if "cpu" in res:
        print("\nCPU speed (per pair)")
        for grid, r in res["cpu"].items():
            print(
                f"{grid}: POT emd2 {r['pot_emd2_s_per_pair'] * 1e6:9.1f} us | projected_emd fwd "
                f"{r['pemd_forward_s_per_pair'] * 1e9:7.1f} ns, "
                f"fwd+bwd {r['pemd_forward_backward_s_per_pair'] * 1e9:7.1f} ns"
                f" | speed-up {r['speedup_forward_vs_pot']:,.0f}x"
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/emd_cpu.json", help="JSON output path")
    ap.add_argument("--n-quality", type=int, default=400, help="pairs per grid for the correlations")
    ap.add_argument("--n-batch", type=int, default=100_000, help="batch of pairs for the CPU timing")
    ap.add_argument("--n-pot", type=int, default=1000, help="pairs timed with POT (per-pair time)")
    args = ap.parse_args(argv)
    res = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__},
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save():
        write_json(out_path, res, indent=2)

    res["quality"] = quality(args.n_quality, [9, 15])
    save()
    res["cpu"] = cpu_speed(args.n_batch, args.n_pot, [9, 15])
    save()
    print_tables(res)
    save()
    print(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
