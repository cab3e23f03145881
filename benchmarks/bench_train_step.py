"""Where a training step's time goes on the CPU: source training and one MCD iteration, by part.

For a profile (default ``standard``) this script builds the profile's network and a batch of its
size, then times, with the median over ``--repeats`` rounds of ``--steps`` steps each:

* **source step** (:func:`pemd_tutorial.training.mcd_step_a`), split into data fetch, G forward
  (fixed and moving in one pass), cost volume forward, heads forward, loss, backward and the
  optimiser steps;
* **one MCD iteration** per discrepancy (steps A, B and C with ``num_k`` generator updates), split
  into A, B and C, and the discrepancy's own forward + backward on the batch's target rows;
* **isolated forward + backward** of G, of the cost volume and of the heads, with a random
  upstream gradient (the backward split of the step).

* **pair generation**: drawing a fresh training batch (:class:`data_utils.PairSampler` for the
  dense network), against the step it feeds.

``--experiment paper`` times the paper experiment's patch network instead
(:class:`pemd_tutorial.model.ConcatNet`, ``PaperConfig.standard``): a source step, one MCD
iteration per row, a fresh batch of patch pairs (:class:`data_utils.patches.PatchSampler`) as a
share of the step, and the step's floating-point operations per second (counted with
``torch.utils.flop_counter``) beside what this CPU reaches on one large convolution.

Usage::

    python benchmarks/bench_train_step.py                       # standard profile, this machine
    python benchmarks/bench_train_step.py --profile quick --out benchmarks/results/train_step_quick.json
    python benchmarks/bench_train_step.py --experiment paper    # -> results/train_step_paper_cpu.json

Results are printed as a table and written as JSON (with the machine, torch version and date).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pemd_tutorial.config import Config  # noqa: E402
from pemd_tutorial.discrepancies import BASE_DISCREPANCIES  # noqa: E402
from pemd_tutorial.jsonio import write_json  # noqa: E402


def _median_ms(fn, steps: int, repeats: int) -> float:
    """Median over ``repeats`` rounds of the mean time of ``steps`` calls, in milliseconds."""
    fn()  # warm-up (allocations, cached operators)
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        rounds.append((time.perf_counter() - t0) / steps * 1000.0)
    return statistics.median(rounds)


def _split_source_step(model, opts, pairs, cfg, steps: int, repeats: int) -> dict[str, float]:
    """Step A with a timer between its parts (median of each part over all steps)."""
    from pemd_tutorial.correlation import cost_volume
    from pemd_tutorial.evaluate import fetch_batch
    from pemd_tutorial.training import SOURCE_KEYS, masked_ce

    gen = torch.Generator().manual_seed(0)
    parts: dict[str, list[float]] = {k: [] for k in
                                     ("data fetch", "G forward", "cost volume forward", "heads forward",
                                      "loss", "backward", "optimiser steps")}
    for i in range(steps * repeats + 1):
        marks = [time.perf_counter()]
        idx = torch.randint(len(pairs), (cfg.batch_size,), generator=gen).tolist()
        b = fetch_batch(pairs, idx, SOURCE_KEYS, "cpu")
        marks.append(time.perf_counter())
        for o in opts.values():
            o.zero_grad(set_to_none=True)
        n = b["fixed"].shape[0]
        feats = model.generator(torch.cat([b["fixed"], b["moving"]]))
        marks.append(time.perf_counter())
        vol = cost_volume(feats[:n], feats[n:], model.grid, model.control_spacing,
                          feature_stride=model.generator.stride, metric=model.metric) * feats.shape[1]
        marks.append(time.perf_counter())
        l1, l2 = model.classify(vol)
        marks.append(time.perf_counter())
        valid = b["mask"] & b["inside"]
        loss = masked_ce(l1, b["labels"], valid) + masked_ce(l2, b["labels"], valid)
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        for o in opts.values():
            o.step()
        marks.append(time.perf_counter())
        if i == 0:
            continue  # warm-up
        for k, (a, z) in zip(parts, zip(marks[:-1], marks[1:], strict=False), strict=True):
            parts[k].append((z - a) * 1000.0)
    return {k: statistics.median(v) for k, v in parts.items()}


def _isolated(model, batch, steps: int, repeats: int) -> dict[str, float]:
    """Forward + backward of G, the cost volume and the heads alone, random upstream gradients."""
    from pemd_tutorial.correlation import cost_volume

    x = torch.cat([batch["fixed"], batch["moving"]])
    n = batch["fixed"].shape[0]
    with torch.no_grad():
        feats = model.generator(x)
        vol = cost_volume(feats[:n], feats[n:], model.grid, model.control_spacing,
                          feature_stride=model.generator.stride, metric=model.metric)
    g_feat = torch.randn_like(feats)
    g_vol = torch.randn_like(vol)

    def gen_fb():
        (model.generator(x) * g_feat).sum().backward()

    f_leaf = feats.detach().requires_grad_(True)

    def cost_fb():
        v = cost_volume(f_leaf[:n], f_leaf[n:], model.grid, model.control_spacing,
                        feature_stride=model.generator.stride, metric=model.metric)
        (v * g_vol).sum().backward()

    v_leaf = vol.detach().requires_grad_(True)

    def heads_fb():
        a, b = model.classify(v_leaf)
        (a * g_vol + b * g_vol).sum().backward()

    out = {
        "G forward + backward": _median_ms(gen_fb, steps, repeats),
        "cost volume forward + backward": _median_ms(cost_fb, steps, repeats),
        "heads forward + backward": _median_ms(heads_fb, steps, repeats),
    }
    model.zero_grad(set_to_none=True)
    return out


def _mcd(model, opts, source, target, cfg, name: str, steps: int, repeats: int) -> dict[str, float]:
    from pemd_tutorial.discrepancies import scaled_discrepancy
    from pemd_tutorial.evaluate import fetch_batch
    from pemd_tutorial.training import (
        SOURCE_KEYS,
        TARGET_KEYS,
        control_point_rows,
        mcd_step_a,
        mcd_step_b,
        mcd_step_c,
    )

    gen = torch.Generator().manual_seed(1)
    g_swd = torch.Generator().manual_seed(2)
    bs = fetch_batch(source, range(cfg.batch_size), SOURCE_KEYS, "cpu")
    bt = fetch_batch(target, range(cfg.batch_size), TARGET_KEYS, "cpu")

    def d_fn(p, q):
        return scaled_discrepancy(name, p, q, cfg.grid, n_projections=cfg.n_projections, generator=gen)

    with torch.no_grad():
        l1, l2 = model(bt["fixed"], bt["moving"])
    p = control_point_rows(l1.softmax(1), bt["mask"]).requires_grad_(True)
    q = control_point_rows(l2.softmax(1), bt["mask"]).requires_grad_(True)

    def disc_fb():
        scaled_discrepancy(name, p, q, cfg.grid, n_projections=cfg.n_projections, generator=g_swd).backward()

    lam = cfg.lam(name)
    return {
        "step A": _median_ms(lambda: mcd_step_a(model, opts, bs), steps, repeats),
        "step B": _median_ms(lambda: mcd_step_b(model, opts, bs, bt, d_fn, lam), steps, repeats),
        f"step C (num_k={cfg.num_k})": _median_ms(lambda: mcd_step_c(model, opts, bt, d_fn, cfg.num_k),
                                                   steps, repeats),
        "discrepancy forward + backward": _median_ms(disc_fb, steps, repeats),
        "rows per target batch": int(p.shape[0]),
    }


def _large_conv_gflops(steps: int, repeats: int) -> float:
    """GFLOP/s of one large convolution's forward + backward (64 -> 64 channels, 3x3, 32x64x64)."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.randn(32, 64, 64, 64, requires_grad=True)

    def fb():
        conv(x).sum().backward()

    ms = _median_ms(fb, max(1, steps // 5), repeats)
    flops = 3 * 2 * 32 * 64 * 64 * 64 * 64 * 9  # forward, grad input, grad weight
    return flops / (ms / 1000.0) / 1e9


def paper_main(args, argv) -> int:
    """The paper experiment's step (see the module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    from data_utils.patches import PatchSampler
    from pemd_tutorial.config import PAPER_METHODS, PaperConfig
    from pemd_tutorial.discrepancies import scaled_discrepancy
    from pemd_tutorial.loop import make_optimizers
    from pemd_tutorial.model import ConcatNet
    from pemd_tutorial.paper import angles_between
    from pemd_tutorial.training import mcd_step_a, mcd_step_b, mcd_step_c

    cfg = PaperConfig.standard()
    model = ConcatNet(cfg)
    opts = make_optimizers(model, cfg.lr)
    source, target = PatchSampler("train", "t1"), PatchSampler("train", "t2", labelled=False)
    gen = torch.Generator().manual_seed(0)
    bs, bt = source.draw_batch(cfg.batch_size, gen), target.draw_batch(cfg.batch_size, gen)
    print(f"paper experiment: batch {cfg.batch_size}, {cfg.patch} px patches, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    step_ms = _median_ms(lambda: mcd_step_a(model, opts, bs), args.steps, args.repeats)
    draw_ms = _median_ms(lambda: source.draw_batch(cfg.batch_size, gen), args.steps, args.repeats)
    with FlopCounterMode(display=False) as counter:
        mcd_step_a(model, opts, bs)
    step_gflop = counter.get_total_flops() / 1e9
    mcd = {}
    for m, (_, disc, n_angles) in PAPER_METHODS.items():
        if disc is None:
            continue
        angles = angles_between(n_angles) if n_angles else None
        g_swd = torch.Generator().manual_seed(1)

        def d_fn(p, q, disc=disc, angles=angles, g_swd=g_swd):
            return scaled_discrepancy(disc, p, q, cfg.grid, n_projections=cfg.n_projections, generator=g_swd,
                                      angles=angles)

        def iteration(d_fn=d_fn):
            mcd_step_a(model, opts, bs)
            mcd_step_b(model, opts, bs, bt, d_fn, 0.1)
            mcd_step_c(model, opts, bt, d_fn, cfg.num_k)

        mcd[m] = _median_ms(iteration, args.steps, args.repeats)
    conv = _large_conv_gflops(args.steps, args.repeats)
    results = {
        "command": " ".join(["python benchmarks/bench_train_step.py", *(argv or sys.argv[1:])]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "config": cfg.to_dict(), "unit": "ms (median)",
        "source step": step_ms,
        "fresh batch of pairs": draw_ms,
        "pair generation / source step": draw_ms / step_ms,
        "pair generation / MCD iteration (two batches)": 2 * draw_ms / min(mcd.values()),
        "MCD iteration": mcd,
        "source step GFLOP": step_gflop,
        "source step GFLOP/s": step_gflop / (step_ms / 1000.0),
        "large convolution GFLOP/s": conv,
    }
    for k, v in results.items():
        if k not in ("config", "machine", "command", "date", "unit"):
            print(f"  {k:48s} {v if isinstance(v, dict) else f'{v:.3f}'}")
    out = Path(args.out or Path(__file__).parent / "results" / "train_step_paper_cpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, results, indent=2)
    print(f"\nwrote {out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", choices=("main", "paper"), default="main")
    p.add_argument("--profile", choices=("quick", "standard", "full"), default="standard")
    p.add_argument("--steps", type=int, default=10, help="steps per timing round (default 10)")
    p.add_argument("--repeats", type=int, default=5, help="timing rounds; the median is kept (default 5)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out", default=None,
                   help="JSON file (default benchmarks/results/train_step_<profile>_cpu.json)")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.experiment == "paper":
        return paper_main(args, argv)

    from data_utils import PairSampler, make_pairs
    from pemd_tutorial.loop import make_optimizers
    from pemd_tutorial.model import RegistrationNet

    cfg = getattr(Config, args.profile)(device="cpu")
    kw = dict(grid=cfg.grid, control_spacing=cfg.control_spacing, size=cfg.image_size,
              max_displacement=cfg.max_displacement, smoothness=cfg.smoothness)
    n = max(4 * cfg.batch_size, 64)
    source = make_pairs("source", "train", n, seed=1, **kw)
    target = make_pairs("target", "train", n, seed=2, **kw)
    model = RegistrationNet(cfg)
    opts = make_optimizers(model, cfg.lr)
    print(f"profile {args.profile!r}: batch {cfg.batch_size}, {cfg.image_size} px, channels {cfg.channels}, "
          f"{cfg.n_labels} labels, control points {cfg.control_shape}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)

    results: dict = {
        "command": " ".join(["python benchmarks/bench_train_step.py", *(argv or sys.argv[1:])]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "profile": args.profile, "config": cfg.to_dict(), "unit": "ms (median)",
    }
    results["source step, split"] = _split_source_step(model, opts, source, cfg, args.steps, args.repeats)
    results["source step, split"]["total"] = sum(results["source step, split"].values())
    bs = source.batch(list(range(cfg.batch_size)))
    results["isolated forward + backward"] = _isolated(model, bs, args.steps, args.repeats)
    gen = torch.Generator().manual_seed(3)
    sampler = PairSampler("source", "train", **kw)  # what the training loop draws from
    draw_ms = _median_ms(lambda: sampler.draw_batch(cfg.batch_size, gen), args.steps, args.repeats)
    results["fresh batch of pairs (PairSampler.draw_batch)"] = draw_ms
    results["pair generation / source step"] = draw_ms / results["source step, split"]["total"]
    results["MCD iteration"] = {}
    for name in BASE_DISCREPANCIES:
        r = _mcd(model, opts, source, target, cfg, name, args.steps, args.repeats)
        r["total"] = r["step A"] + r["step B"] + r[f"step C (num_k={cfg.num_k})"]
        results["MCD iteration"][name] = r

    print(f"\nfresh batch of {cfg.batch_size} pairs: {draw_ms:.2f} ms "
          f"({100 * results['pair generation / source step']:.0f} % of a source step)")
    for section in ("source step, split", "isolated forward + backward"):
        print(f"\n{section} (ms)")
        for k, v in results[section].items():
            print(f"  {k:34s} {v:8.2f}")
    print("\nMCD iteration (ms)")
    for name, r in results["MCD iteration"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in r.items()))
    out = Path(args.out or Path(__file__).parent / "results" / f"train_step_{args.profile}_cpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, results, indent=2)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
