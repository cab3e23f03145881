"""Choose the step-B weight λ of each discrepancy without target labels (and report what labels would pick).

Protocol (the one documented in docs/selection.md):

1. For each seed ``s``: the main job's training data (fresh pairs every step, or a fixed pool), the
   fixed *validation* evaluation sets of both domains (:func:`data_utils.evaluation_pairs`
   ``split="val"``, target contrast ``cfg.target_contrast``). The test split is never built here.
2. A source-only network (``train_source``, ``cfg.source_steps``) per seed.
3. For every discrepancy and every λ of its grid, a copy of that network is adapted (``adapt``,
   ``cfg.adapt_steps``), then scored on the validation pairs: the **label-free scores** of
   :func:`pemd_tutorial.selection.label_free_scores` on the *unlabelled* target validation pairs
   (MIND-SSD and NMI after warping, information maximisation, soft neighbourhood density), the
   source validation accuracy (the collapse check; source labels are allowed) and, for reference
   only, the target validation accuracy (target labels: never used to choose).
4. **Collapse rule**: a λ whose adaptation lowers the mean source validation accuracy by more than
   ``--max-source-drop`` (default 0.10, i.e. 10 points) below the source-only network's is not
   eligible.
5. Per discrepancy and per score, :func:`pemd_tutorial.selection.choose_lambda` picks the eligible λ
   with the best mean score over seeds. The λ that target validation labels would pick is reported
   beside it, as a reference.

Discrepancies are normalised as in :func:`pemd_tutorial.discrepancies.scaled_discrepancy` (total variation
for L1, SWD x L/2, projected EMD in label steps), so the same grid fits all three.

Usage::

    python benchmarks/tune_lambda.py --profile standard --seeds 0 1 2 --grid-l1 1 2 3 5 \\
        --grid-pemd 0.3 0.5 0.7 1 --grid-swd 1 10 --no-oracle
    python benchmarks/tune_lambda.py --profile standard --set target_contrast='"flair"' ...

``--jobs`` runs the adaptation grid in that many worker processes (useful on a GPU, whose small
kernels leave it mostly idle for one process). Results are written after every finished run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pemd_tutorial.config import Config  # noqa: E402
from pemd_tutorial.discrepancies import BASE_DISCREPANCIES  # noqa: E402
from pemd_tutorial.jsonio import write_json  # noqa: E402
from pemd_tutorial.selection import HIGHER_IS_BETTER, SCORES, choose_lambda, collapsed, label_free_scores  # noqa: E402

DEFAULT_GRID = (0.01, 0.1, 1.0, 10.0)


def _data(cfg: Config, seed: int) -> dict:
    from data_utils import PairSampler, evaluation_pairs, make_pairs

    kw = dict(grid=cfg.grid, control_spacing=cfg.control_spacing, size=cfg.image_size,
              max_displacement=cfg.max_displacement, smoothness=cfg.smoothness)
    tkw = {**kw, "moving_contrast": cfg.target_contrast}
    if cfg.n_train_pairs is None:  # fresh pairs for every step, as the main job draws them
        source, target = PairSampler("source", "train", **kw), PairSampler("target", "train", **tkw)
    else:
        source = make_pairs("source", "train", cfg.n_train_pairs, seed=seed * 1000 + 101, **kw)
        target = make_pairs("target", "train", cfg.n_train_pairs, seed=seed * 1000 + 202, **tkw)
    target_val = evaluation_pairs("target", "val", cfg.n_val_pairs, **tkw)
    return {
        "source": source,
        "target": target,
        "source_val": evaluation_pairs("source", "val", cfg.n_val_pairs, **kw).evaluation_view(),
        "target_val": target_val.evaluation_view(),
        "target_val_unlabelled": target_val,  # what the label-free scores read
    }


def _accuracy(model, pairs) -> float:
    from pemd_tutorial.evaluate import pairs_accuracy

    return pairs_accuracy(model, pairs)


_CACHE: dict = {}


def _cached_data(cfg: Config, seed: int) -> dict:
    key = (json.dumps(cfg.to_dict(), sort_keys=True), seed)
    if key not in _CACHE:
        _CACHE[key] = _data(cfg, seed)
    return _CACHE[key]


def source_job(cfg_dict: dict, seed: int, state_path: str, threads: int) -> dict:
    """Train the source-only network of one seed; save its weights; score it."""
    from pemd_tutorial.model import RegistrationNet
    from pemd_tutorial.training import train_source

    torch.set_num_threads(threads)
    cfg = Config.from_dict(cfg_dict).replace(seed=seed)
    d = _cached_data(cfg, seed)
    model = RegistrationNet(cfg).to(cfg.device)
    t0 = time.perf_counter()
    train_source(model, d["source"], cfg, progress=False)
    seconds = time.perf_counter() - t0
    torch.save(model.state_dict(), state_path)
    return {"seed": seed, "method": "source_only", "target_val_acc": _accuracy(model, d["target_val"]),
            "source_val_acc": _accuracy(model, d["source_val"]), "seconds": seconds,
            **label_free_scores(model, d["target_val_unlabelled"])}


def oracle_job(cfg_dict: dict, seed: int, threads: int) -> dict:
    """The oracle of one seed (trained with the target *train* labels), for context only."""
    from pemd_tutorial.model import RegistrationNet
    from pemd_tutorial.training import train_oracle

    torch.set_num_threads(threads)
    cfg = Config.from_dict(cfg_dict).replace(seed=seed)
    d = _cached_data(cfg, seed)
    model = RegistrationNet(cfg).to(cfg.device)
    t0 = time.perf_counter()
    train_oracle(model, d["target"].evaluation_view(), cfg, progress=False)  # the explicit oracle
    return {"seed": seed, "method": "oracle", "target_val_acc": _accuracy(model, d["target_val"]),
            "source_val_acc": _accuracy(model, d["source_val"]), "seconds": time.perf_counter() - t0}


def _target_discrepancy(model, pairs, cfg: Config, name: str) -> float:
    """D(F1, F2) on the foreground control points of ``pairs`` (images only: no labels read)."""
    from pemd_tutorial.discrepancies import scaled_discrepancy
    from pemd_tutorial.evaluate import predict
    from pemd_tutorial.training import control_point_rows

    p1, p2 = predict(model, pairs)
    mask = pairs.batch()["mask"]
    rows = [control_point_rows(p, mask) for p in (p1, p2)]
    gen = torch.Generator().manual_seed(0)  # SWD's directions: the same for every run
    return float(scaled_discrepancy(name, *rows, cfg.grid, n_projections=cfg.n_projections, generator=gen))


def adapt_job(cfg_dict: dict, seed: int, name: str, lam: float, state_path: str, threads: int) -> dict:
    """Adapt a copy of the seed's source network with one (discrepancy, lambda); score it."""
    from pemd_tutorial.model import RegistrationNet
    from pemd_tutorial.training import adapt

    torch.set_num_threads(threads)
    cfg = Config.from_dict(cfg_dict).replace(seed=seed)
    d = _cached_data(cfg, seed)
    model = RegistrationNet(cfg).to(cfg.device)
    model.load_state_dict(torch.load(state_path, map_location=cfg.device, weights_only=True))
    t0 = time.perf_counter()
    net = model
    log = adapt(net, d["source"], d["target"], cfg, discrepancy=name, lam=lam, val=d["target_val"],
                progress=False)
    seconds = time.perf_counter() - t0
    vals = [r["val_acc"] for r in log if r["val_acc"] is not None]
    return {
        "seed": seed, "discrepancy": name, "lam": lam,
        "target_val_acc": vals[-1], "target_val_acc_max": max(vals),
        "target_val_curve": vals, "source_val_acc": _accuracy(net, d["source_val"]),
        "target_val_discrepancy": _target_discrepancy(net, d["target_val"], cfg, name),
        **label_free_scores(net, d["target_val_unlabelled"]),
        "disc_b_last": log[-1]["disc_b"], "disc_c_last": log[-1]["discrepancy"],
        "source_ce_last": log[-1]["source_ce"], "seconds": seconds,
    }


def choose(rows: list[dict], names, grids: dict, source_only: list[dict], max_drop: float) -> dict:
    """Per discrepancy: the λ of every label-free score (:func:`choose_lambda`), and for reference the
    eligible λ with the best mean target validation accuracy (``"by_target_labels"``)."""
    src = {r["seed"]: r["source_val_acc"] for r in source_only}
    if not src:
        return {}
    reference = sum(src.values()) / len(src)
    out = {}
    for name in names:
        table = {}
        for lam in grids[name]:
            runs = [r for r in rows if r["discrepancy"] == name and r["lam"] == lam and r["seed"] in src]
            if len(runs) < len(src):  # every seed of the source-only networks, or not yet
                continue
            keys = ("target_val_acc", "source_val_acc", "target_val_discrepancy", *HIGHER_IS_BETTER)
            table[lam] = {k: sum(r[k] for r in runs) / len(runs) for k in keys}
            table[lam]["eligible"] = not collapsed(reference, table[lam]["source_val_acc"], max_drop)
        entry: dict = {"grid": {str(k): v for k, v in table.items()}, "source_only_source_val_acc": reference}
        if table:
            try:
                picks = {score: choose_lambda(table, score, reference, max_source_drop=max_drop, name=name)
                         for score in SCORES}
            except ValueError as err:
                entry["error"] = str(err)
            else:
                ok = {k: v for k, v in table.items() if v["eligible"]}
                by_labels = max(sorted(ok), key=lambda k: ok[k]["target_val_acc"])
                lams = sorted(table)
                entry.update({
                    "label_free": {score: {"lam": lam, "target_val_acc": table[lam]["target_val_acc"]}
                                   for score, lam in picks.items()},
                    "by_target_labels": {"lam": by_labels,
                                         "target_val_acc": table[by_labels]["target_val_acc"]},
                    "interior": {score: lams[0] < lam < lams[-1] for score, lam in picks.items()},
                })
        out[name] = entry
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=("quick", "standard", "full"), default="standard")
    ap.add_argument("--device", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--grid", type=float, nargs="+", default=list(DEFAULT_GRID))
    for name in BASE_DISCREPANCIES:
        ap.add_argument(f"--grid-{name}", type=float, nargs="+", default=None, metavar="LAMBDA",
                        help=f"the grid of {name} (default: --grid)")
    ap.add_argument("--discrepancies", nargs="+", default=list(BASE_DISCREPANCIES),
                    choices=BASE_DISCREPANCIES)
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON",
                    help="Config overrides, e.g. adapt_steps=100 lr=0.0005")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--max-source-drop", type=float, default=0.10,
                    help="collapse rule: a lambda lowering the mean source val accuracy by more than this "
                         "(a fraction; default 0.10 = 10 points) is not eligible")
    ap.add_argument("--no-oracle", dest="oracle", action="store_false", help="skip the oracle runs")
    ap.add_argument("--extend", action="store_true",
                    help="keep the runs already in --out (same config and seeds) and add the grid's new ones")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    overrides = {}
    for item in args.set:
        k, v = item.split("=", 1)
        overrides[k] = json.loads(v)
    if args.device:
        overrides["device"] = args.device
    cfg = getattr(Config, args.profile)(**overrides)
    grids = {n: getattr(args, f"grid_{n}") or args.grid for n in BASE_DISCREPANCIES}
    out = Path(args.out or f"benchmarks/results/lambda_{args.profile}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tune_lambda_"))  # source-only weights shared with the workers
    threads = max(1, (os.cpu_count() or 2) // max(1, args.jobs))
    on_gpu = cfg.device.startswith("cuda")
    device_name = torch.cuda.get_device_name(0) if on_gpu else platform.processor() or "cpu"
    result = {
        "protocol": __doc__.split("Usage::")[0].strip(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": f"{device_name}, {os.cpu_count()} CPU cores", "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": cfg.to_dict(), "grid": {n: grids[n] for n in args.discrepancies}, "seeds": args.seeds,
        "max_source_drop": args.max_source_drop,
        "source_only": [], "oracle": [], "runs": [], "chosen": {},
    }

    def write():
        result["chosen"] = choose(result["runs"], args.discrepancies, grids, result["source_only"],
                                  args.max_source_drop)
        write_json(out, result)

    done: set = set()
    if args.extend and out.is_file():
        old = json.loads(out.read_text())
        def same(a: dict, b: dict) -> bool:  # the profile's own λ table plays no part in a sweep
            return ({k: v for k, v in a.items() if k != "lambdas"}
                    == {k: v for k, v in b.items() if k != "lambdas"})

        if not same(old["config"], result["config"]) or old["seeds"] != result["seeds"]:
            raise SystemExit(f"--extend: {out} was written for another config or other seeds")
        result["runs"], result["oracle"] = old["runs"], old["oracle"]
        result["grid"] = {n: sorted(set(old["grid"].get(n, [])) | set(grids[n])) for n in args.discrepancies}
        grids = {**grids, **result["grid"]}
        result["command"] = old["command"] + " && " + result["command"]
        done = {(r["seed"], r["discrepancy"], r["lam"]) for r in old["runs"]}
        args.oracle = False  # already there

    t0 = time.perf_counter()
    ctx = torch.multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        states = {s: str(work / f"source_seed{s}.pt") for s in args.seeds}
        futs = [pool.submit(source_job, cfg.to_dict(), s, states[s], threads) for s in args.seeds]
        for f in as_completed(futs):
            row = f.result()
            result["source_only"].append(row)
            print(f"[{time.perf_counter() - t0:7.1f}s] source-only seed {row['seed']}: target val "
                  f"{row['target_val_acc']:.3f} source val {row['source_val_acc']:.3f} "
                  f"({row['seconds']:.0f}s)", flush=True)
            write()
        jobs = [(s, n, lam) for n in args.discrepancies for lam in grids[n] for s in args.seeds
                if (s, n, lam) not in done]
        futs = [pool.submit(oracle_job, cfg.to_dict(), s, threads) for s in args.seeds] if args.oracle else []
        futs += [pool.submit(adapt_job, cfg.to_dict(), s, n, lam, states[s], threads) for s, n, lam in jobs]
        for f in as_completed(futs):
            try:
                row = f.result()
            except Exception as err:  # one failed run must not lose the others
                result.setdefault("errors", []).append(repr(err))
                print(f"[{time.perf_counter() - t0:7.1f}s] a run failed: {err!r}", flush=True)
                write()
                continue
            if row.get("method") == "oracle":
                result["oracle"].append(row)
                print(f"[{time.perf_counter() - t0:7.1f}s] oracle seed {row['seed']}: target val "
                      f"{row['target_val_acc']:.3f} ({row['seconds']:.0f}s)", flush=True)
                write()
                continue
            result["runs"].append(row)
            print(f"[{time.perf_counter() - t0:7.1f}s] {row['discrepancy']:>4} lam={row['lam']:<6g} seed "
                  f"{row['seed']}: target val {row['target_val_acc']:.3f} "
                  f"(max {row['target_val_acc_max']:.3f}) "
                  f"source val {row['source_val_acc']:.3f} D_b {row['disc_b_last']:.3g} "
                  f"D(target val) {row['target_val_discrepancy']:.3g} "
                  f"({row['seconds']:.0f}s)", flush=True)
            write()
    result["total_seconds"] = time.perf_counter() - t0
    write()
    print(json.dumps(result["chosen"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
