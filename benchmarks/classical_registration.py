"""What a user would pick instead: a classical iterative B-spline registration with mutual information.

Registers every dense target test pair of the main job (fixed T1w, moving simulated T2w or
FLAIR-like; the identical pairs every method of ``python -m pemd_tutorial`` is scored on) with
SimpleITK's ``ImageRegistrationMethod``: a cubic B-spline transform, Mattes mutual information
(32 bins, every pixel), L-BFGS-B, two resolution levels. SimpleITK's transform maps a fixed-image
point ``x`` to the moving-image point ``x + u(x)``, the convention of :mod:`data_utils.grid`, so
its displacement at the control points is scored exactly like a network's prediction (a pair on
which the optimiser fails, moving the image out of the overlap, is counted and scored as no
motion): label
accuracy (the quantised displacement equals the true label), within-one and end-point error
(pixels), over the foreground control points.

The B-spline mesh and the number of iterations are chosen on the target *validation* pairs (by
label accuracy: this uses target labels, which favours the classical method), then run once on
the test pairs. The network's inference time on the same pairs (the shipped MCD-pEMD network,
CPU) is measured beside it.

SimpleITK is a benchmark-only dependency (``pip install SimpleITK``, in the ``test`` extra).

    python benchmarks/classical_registration.py                 # T2w target
    python benchmarks/classical_registration.py --target flair
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_utils import evaluation_pairs  # noqa: E402
from pemd_tutorial.config import Config  # noqa: E402
from pemd_tutorial.jsonio import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GRID = ({"mesh": 2, "iterations": 50}, {"mesh": 3, "iterations": 50}, {"mesh": 4, "iterations": 50},
        {"mesh": 6, "iterations": 50}, {"mesh": 3, "iterations": 150})


def bspline_mi(fixed: np.ndarray, moving: np.ndarray, mesh: int, iterations: int) -> np.ndarray:
    """Register one 2D pair; the dense displacement ``(2, H, W)`` in pixels, ``(dx, dy)``."""
    import SimpleITK as sitk

    f = sitk.GetImageFromArray(fixed.astype(np.float32))
    m = sitk.GetImageFromArray(moving.astype(np.float32))
    tx = sitk.BSplineTransformInitializer(f, [mesh, mesh], 3)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=iterations,
                             maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=4 * iterations)
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SetInitialTransform(tx, inPlace=True)
    reg.Execute(f, m)
    field = sitk.TransformToDisplacementField(tx, sitk.sitkVectorFloat64, f.GetSize(), f.GetOrigin(),
                                              f.GetSpacing(), f.GetDirection())
    return np.moveaxis(sitk.GetArrayFromImage(field), -1, 0)  # (2, H, W): x then y components


def score(pairs, cfg: Config, mesh: int, iterations: int) -> dict:
    """Register every pair; metrics at the foreground control points and the time per pair."""
    from data_utils import at_control_points

    b = pairs.batch()
    fixed, moving = b["fixed"][:, 0].numpy(), b["moving"][:, 0].numpy()
    t0 = time.perf_counter()
    fields, failed = [], 0
    for f, m in zip(fixed, moving, strict=True):
        try:
            fields.append(bspline_mi(f, m, mesh, iterations))
        except RuntimeError:  # the optimiser moved the image out of the overlap: count it, score no motion
            failed += 1
            fields.append(np.zeros((2, *f.shape)))
    dense = np.stack(fields)
    seconds = time.perf_counter() - t0
    disp = at_control_points(torch.from_numpy(dense).float(), cfg.control_spacing)  # (N, 2, Hc, Wc)
    labels, _ = cfg.grid.quantise(disp)
    valid = b["mask"] & b["inside"]
    offsets = cfg.grid.offsets()
    cheb = (offsets[labels] - offsets[b["labels"]]).abs().amax(dim=-1)
    err = (disp - b["displacement"]).norm(dim=1)
    return {"mesh": mesh, "iterations": iterations,
            "accuracy": float((labels == b["labels"])[valid].float().mean()),
            "within_one": float((cheb <= 1)[valid].float().mean()),
            "epe": float(err[valid].double().mean()), "n_pairs": len(pairs), "n_failed": failed,
            "seconds_per_pair": seconds / len(pairs)}


def network_inference_seconds(pairs, name: str = "mcd_pemd") -> float:
    """Seconds per pair of the shipped network's prediction on the same pairs (CPU, batched)."""
    from pemd_tutorial.evaluate import predict
    from pemd_tutorial.pretrained import load_pretrained

    net = load_pretrained(name)
    predict(net, pairs)  # warm-up
    t0 = time.perf_counter()
    predict(net, pairs)
    return (time.perf_counter() - t0) / len(pairs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="t2", choices=("t2", "flair"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="SimpleITK threads (default: every core)")
    ap.add_argument("--out", default=None, help="default: results/classical_<target>.json")
    args = ap.parse_args(argv)
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    cfg = Config.standard(target_contrast=args.target)
    kw = dict(grid=cfg.grid, control_spacing=cfg.control_spacing, size=cfg.image_size,
              moving_contrast=args.target)
    val = evaluation_pairs("target", "val", cfg.n_val_pairs, **kw).evaluation_view()
    test = evaluation_pairs("target", "test", cfg.n_test_pairs, **kw).evaluation_view()
    t0 = time.perf_counter()
    sweep = []
    for setting in GRID:
        row = score(val, cfg, **setting)
        sweep.append(row)
        print(f"val  mesh {row['mesh']} it {row['iterations']:3d}: acc {100 * row['accuracy']:.1f} %  "
              f"within-one {100 * row['within_one']:.1f} %  EPE {row['epe']:.2f} px  "
              f"({row['seconds_per_pair']:.2f} s/pair)", flush=True)
    best = max(sweep, key=lambda r: (r["accuracy"], -r["seconds_per_pair"]))
    test_row = score(test, cfg, best["mesh"], best["iterations"])
    print(f"test mesh {best['mesh']} it {best['iterations']}: acc {100 * test_row['accuracy']:.1f} %  "
          f"within-one {100 * test_row['within_one']:.1f} %  EPE {test_row['epe']:.2f} px  "
          f"({test_row['seconds_per_pair']:.2f} s/pair)")
    result = {
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or 'cpu'}, {os.cpu_count()} CPU cores, SimpleITK "
                   f"{sitk.Version_VersionString()}, {args.threads} threads",
        "target": args.target,
        "validation_sweep": sweep,
        "test": test_row,
        "network_inference_seconds_per_pair": network_inference_seconds(test)
        if args.target == "t2" else None,
        "wall_time_s": time.perf_counter() - t0,
    }
    out = Path(args.out or RESULTS / f"classical_{args.target}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
