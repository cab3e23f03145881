"""Bisect the experimental Triton kernels of projected_emd on a CUDA device (one call, ~1-2 min).

Each variant runs in its own Python process (a kernel fault poisons the CUDA context of the
process that hit it), on 9x9 and 15x15 grids, with 1, 64, 1000 and 200,000 rows, and reports the
relative error of the per-row forward and of both gradients against the float64 PyTorch
reference (gradients on rows whose cumulative differences stay away from 0, see
tests/test_emd_triton.py). Usage::

    python3 benchmarks/debug_emd_triton.py --out $OUT/debug_triton.json

Variants are environment settings of pemd_tutorial._emd_triton: PEMD_TRITON_CONFIG
(BLOCK_N,BLOCK_K,num_warps), PEMD_TRITON_SPLITS (0 = float32 "ieee" dots), PEMD_TRITON_BWD_SPLITS
(the backward's second product only), PEMD_TRITON_NUM_STAGES, PEMD_TRITON_PROGRAMS_PER_SM.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "default": {},
    "one_warpgroup": {"PEMD_TRITON_CONFIG": "64,32,4"},
    "bwd_ieee": {"PEMD_TRITON_BWD_SPLITS": "0"},
    "all_ieee": {"PEMD_TRITON_SPLITS": "0"},
    "one_warpgroup_bwd_ieee": {"PEMD_TRITON_CONFIG": "64,32,4", "PEMD_TRITON_BWD_SPLITS": "0"},
    "one_program_per_sm": {"PEMD_TRITON_PROGRAMS_PER_SM": "1"},
}

CHILD = r"""
import json, math, sys, torch
sys.path.insert(0, ROOT)
from pemd_tutorial.emd import _cumulative_operator, _normalise_directions, projected_emd
torch.manual_seed(0)
res = {}
def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())
for side in (9, 15):
    gs, L = (side, side), side * side
    dirs = _normalise_directions(None, gs, "debug")
    a64, _ = _cumulative_operator(gs, dirs, torch.float64, torch.device("cuda"))
    for n in (1, 64, 1000, 200_000):
        key = f"{side}x{side}_n{n}"
        try:
            p = torch.softmax(torch.randn(n, L, device="cuda"), -1)
            q = torch.softmax(torch.randn(n, L, device="cuda"), -1)
            wts = torch.rand(n, device="cuda") + 0.5
            pr, qr = p.double().requires_grad_(), q.double().requires_grad_()
            ref = projected_emd(pr, qr, gs, step=2.0, reduction="none", backend="torch")
            gpr, gqr = torch.autograd.grad((ref * wts).sum(), (pr, qr))
            pt, qt = p.clone().requires_grad_(), q.clone().requires_grad_()
            out = projected_emd(pt, qt, gs, step=2.0, reduction="none", backend="triton")
            gpt, gqt = torch.autograd.grad((out * wts).sum(), (pt, qt))
            torch.cuda.synchronize()
            ok = (((p.double() - q.double()) @ a64).abs().min(1).values > 1e-6)
            res[key] = {"fwd": rel(out.detach(), ref.detach()), "grad_p": rel(gpt[ok], gpr[ok]),
                        "grad_q": rel(gqt[ok], gqr[ok]), "rows_checked": int(ok.sum())}
        except Exception as err:
            res[key] = {"error": repr(err)[:300]}
            print(json.dumps(res))
            raise SystemExit(0)
print(json.dumps(res))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/debug_emd_triton.json")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per variant")
    args = ap.parse_args(argv)
    results = {}
    for name, env in VARIANTS.items():
        code = CHILD.replace("ROOT", repr(str(ROOT)))
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                timeout=args.timeout,
            )
            last = (proc.stdout.strip().splitlines() or ["{}"])[-1]
            results[name] = {"env": env, "rc": proc.returncode, "cases": json.loads(last),
                             "stderr_tail": proc.stderr[-600:]}
        except (subprocess.TimeoutExpired, json.JSONDecodeError) as err:
            results[name] = {"env": env, "error": repr(err)[:300]}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"\n{name} {env}")
        for case, r in results[name].get("cases", {}).items():
            if "error" in r:
                print(f"  {case:<16} ERROR {r['error'][:100]}")
            else:
                print(f"  {case:<16} fwd {r['fwd']:.1e}  grad_p {r['grad_p']:.1e}  grad_q {r['grad_q']:.1e}")
        if "error" in results[name]:
            print(f"  ERROR {results[name]['error']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
