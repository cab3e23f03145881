"""Benchmark of pemd_tutorial.emd: quality against the exact EMD, CPU speed, GPU speed.

Usage::

    python benchmarks/bench_emd.py                     # quality + CPU (+ GPU when CUDA is present)
    python benchmarks/bench_emd.py --gpu-only --out benchmarks/results/emd_gpu.json

Quality: Spearman and Pearson correlation between projected_emd (2, 4, 8 angles) and the exact
EMD (POT ``emd2``, Euclidean ground cost) on random peaked histogram pairs. CPU speed: time per
pair of POT's exact ``emd2`` (timed on a subset of pairs, per pair) against projected_emd on a
batch. GPU speed: forward and forward+backward of projected_emd in float32, as a multiple of the
memory floor = bytes of both inputs / measured device-to-device copy bandwidth.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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


def _cuda_time(fn, warmup: int = 3, reps: int = 15) -> float:
    """Median seconds of ``fn()`` on the current CUDA device (events around each call)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def copy_bandwidth(n_bytes: int = 2 << 30) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written."""
    x = torch.rand(n_bytes // 4, device="cuda")
    y = torch.empty_like(x)
    t = _cuda_time(lambda: y.copy_(x), warmup=3, reps=20)
    return 2 * n_bytes / t


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _plain_autograd(p, q, shape):
    """The straightforward PyTorch version: the same matrix product, autograd's own backward."""
    from pemd_tutorial.emd import _cumulative_operator, _normalise_directions

    a, w = _cumulative_operator(shape, _normalise_directions(None, shape, "bench"), p.dtype, p.device)
    return (((p - q) @ a).abs() @ w).mean()


def gpu_speed(configs: list[str], save) -> dict:
    """Torch paths first (each result saved at once), then the opt-in Triton configs."""
    dev = torch.device("cuda")
    bw = copy_bandwidth()
    out = {"device": torch.cuda.get_device_name(dev), "copy_bandwidth_GBps": bw / 1e9, "cases": {}}
    for side, n in ((9, 4_194_304), (15, 2_097_152)):
        shape, n_labels = (side, side), side * side
        g = torch.Generator(device=dev).manual_seed(side)
        p = torch.softmax(2 * torch.randn(n, n_labels, device=dev, generator=g), -1)
        q = torch.softmax(2 * torch.randn(n, n_labels, device=dev, generator=g), -1)
        floor = 2 * p.numel() * p.element_size() / bw
        case = {"n_pairs": n, "floor_ms": floor * 1e3, "versions": {}}
        out["cases"][f"{side}x{side}"] = case
        # Accuracy on a slice against float64 (forward and gradient).
        sl = slice(0, 200_000)
        pr, qr = p[sl].double().requires_grad_(), q[sl].double().requires_grad_()
        ref = projected_emd(pr, qr, shape, reduction="none", backend="torch")
        (gpr, _) = torch.autograd.grad(ref.sum(), (pr, qr))
        ref = ref.detach()

        def accuracy(backend, sl=sl, shape=shape, p=p, q=q, ref=ref, gpr=gpr, case=case):
            ps, qs = p[sl].clone().requires_grad_(), q[sl].clone().requires_grad_()
            val = projected_emd(ps, qs, shape, reduction="none", backend=backend)
            (gps, _) = torch.autograd.grad(val.sum(), (ps, qs))
            case[f"rel_err_forward_{backend}"] = _rel(val.detach(), ref)
            case[f"rel_err_grad_{backend}"] = _rel(gps, gpr)

        pg, qg = p.clone().requires_grad_(), q.clone().requires_grad_()

        def run(backend, pg=pg, qg=qg, shape=shape, p=p, q=q, floor=floor):
            if backend == "plain":
                fwd = _cuda_time(lambda: _plain_autograd(p, q, shape))
                fb = _cuda_time(lambda: torch.autograd.grad(_plain_autograd(pg, qg, shape), (pg, qg)))
            else:
                fwd = _cuda_time(lambda: projected_emd(p, q, shape, validate=False, backend=backend))
                fb = _cuda_time(
                    lambda: torch.autograd.grad(
                        projected_emd(pg, qg, shape, validate=False, backend=backend), (pg, qg)
                    )
                )
            return {"forward_ms": fwd * 1e3, "forward_backward_ms": fb * 1e3,
                    "forward_x_floor": fwd / floor, "forward_backward_x_floor": fb / floor}

        accuracy("torch")
        case["versions"]["torch_plain_autograd"] = run("plain")
        case["versions"]["torch_reference (closed-form backward)"] = run("torch")
        save()
        if configs:
            import pemd_tutorial._emd_triton as kernels

            try:
                accuracy("triton")
            except Exception as err:  # noqa: BLE001 - recorded, then the Triton part stops
                case["triton_error"] = repr(err)[:500]
                save()
                return out
            for cfg in configs:
                bn, bk, nw, pps, splits = cfg.split(",")
                os.environ["PEMD_TRITON_CONFIG"] = f"{bn},{bk},{nw}"
                kernels.PROGRAMS_PER_SM, kernels.SPLITS = int(pps), int(splits)
                name = f"triton[BN={bn},BK={bk},W={nw},PPS={pps},SPLITS={splits}]"
                try:
                    case["versions"][name] = run("triton")
                except Exception as err:  # noqa: BLE001 - a config that does not compile is reported
                    case["versions"][name] = {"error": repr(err)[:300]}
                save()
            os.environ.pop("PEMD_TRITON_CONFIG", None)
            kernels.PROGRAMS_PER_SM, kernels.SPLITS = 4, 3
        del p, q, pg, qg
        torch.cuda.empty_cache()
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
    if "gpu" in res:
        g = res["gpu"]
        print(f"\nGPU: {g['device']}, copy bandwidth {g['copy_bandwidth_GBps']:.0f} GB/s (read + write)")
        for grid, case in g["cases"].items():
            errs = ", ".join(
                f"{b} {case[f'rel_err_forward_{b}']:.1e}/{case[f'rel_err_grad_{b}']:.1e}"
                for b in ("torch", "triton") if f"rel_err_grad_{b}" in case
            )
            print(f"{grid}, {case['n_pairs']:,} pairs, floor {case['floor_ms']:.3f} ms; "
                  f"rel err fwd/grad vs float64: {errs} {case.get('triton_error', '')[:120]}")
            for name, v in case["versions"].items():
                if "error" in v:
                    print(f"  {name:<45} ERROR {v['error'][:80]}")
                else:
                    print(f"  {name:<45} fwd {v['forward_ms']:8.3f} ms ({v['forward_x_floor']:5.2f}x)  "
                          f"fwd+bwd {v['forward_backward_ms']:8.3f} ms "
                          f"({v['forward_backward_x_floor']:5.2f}x)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/emd_cpu.json", help="JSON output path")
    ap.add_argument("--gpu-only", action="store_true", help="skip the quality and CPU parts")
    ap.add_argument("--n-quality", type=int, default=400, help="pairs per grid for the correlations")
    ap.add_argument("--n-batch", type=int, default=100_000, help="batch of pairs for the CPU timing")
    ap.add_argument("--n-pot", type=int, default=1000, help="pairs timed with POT (per-pair time)")
    ap.add_argument("--triton", action="store_true", help="also time the experimental Triton kernels")
    ap.add_argument(
        "--triton-configs",
        default="128,32,8,4,3;64,32,4,4,3;128,64,8,4,3;64,64,4,8,3;256,32,8,2,3;64,32,4,8,3;"
        "128,32,8,4,2;128,32,8,4,0",
        help="';'-separated BLOCK_N,BLOCK_K,num_warps,programs_per_SM,splits to time",
    )
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
        out_path.write_text(json.dumps(res, indent=2))

    if not args.gpu_only:
        res["quality"] = quality(args.n_quality, [9, 15])
        save()
        res["cpu"] = cpu_speed(args.n_batch, args.n_pot, [9, 15])
        save()
    if torch.cuda.is_available():
        configs = [c for c in args.triton_configs.split(";") if c] if args.triton else []
        res["gpu"] = {}
        res["gpu"] = gpu_speed(configs, save)
        save()
    elif args.gpu_only:
        print("no CUDA device: nothing to measure for --gpu-only")
    print_tables(res)
    save()
    print(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
