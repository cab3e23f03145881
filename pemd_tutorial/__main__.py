"""The main job's command line: ``python -m pemd_tutorial`` (or the ``pemd-tutorial`` console script).

It parses the options into one :class:`~pemd_tutorial.config.Config`, calls
:func:`pemd_tutorial.experiment.run_experiment` and prints the results table. Examples::

    python -m pemd_tutorial                       # the standard profile (CPU or GPU)
    python -m pemd_tutorial --profile quick --seeds 0 --methods mind source mcd_pemd   # smoke test
    python -m pemd_tutorial --save-models models  # also write every trained network
    python -m pemd_tutorial --fixed t1.nii.gz --moving t2.nii.gz --out results_mine
    python -m pemd_tutorial --config-json tiny.json --out /tmp/r   # {"image_size": 32, ...} overrides

and registers a pair of the user's own NIfTI volumes with a trained network
(:func:`pemd_tutorial.registration.register`)::

    python -m pemd_tutorial register --fixed sub01_T1w.nii.gz --moving sub01_T2w.nii.gz \
        --model pretrained:mcd_pemd --out results_sub01 [--mask brain.nii.gz] [--axis 2] [--slices 40:90]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PROFILES", "PROFILE_NOTES", "build_paper_parser", "build_parser", "build_register_parser",
           "config_from_args", "main", "paper_main", "register_main"]

#: Choices of ``--profile`` ("auto" selects "standard" on every device).
PROFILES = ("auto", "standard", "quick", "full")
#: What each profile is, printed when the main job starts.
PROFILE_NOTES = {
    "standard": "the default: the README's results, about 8 minutes on 2 CPU cores",
    "quick": "a smoke test for CI: about a minute; too short to show any method's effect",
    "full": "opt-in GPU profile, never run end to end: its time and results are unmeasured",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the main job."""
    from pemd_tutorial.config import DENSE_TARGET_CONTRASTS
    from pemd_tutorial.experiment import DEFAULT_METHODS, METHODS

    p = argparse.ArgumentParser(
        prog="python -m pemd_tutorial",
        description=(
            "Unsupervised multimodal registration by domain adaptation (Heinrich & Hansen, MIDL 2020): "
            "trains source-only, MCD-L1, MCD-SWD, MCD-pEMD and an oracle, runs the MIND baseline, and "
            "writes results.json, results.md and figures."
        ),
        epilog="To register a pair of your own NIfTI volumes with a trained network: "
               "python -m pemd_tutorial register --help; the paper's own patch experiment: "
               "python -m pemd_tutorial paper --help",
    )
    p.add_argument("--experiment", choices=("main", "paper"), default="main",
                   help="'main': the dense registration experiment (default); 'paper' is the older "
                        "spelling of 'python -m pemd_tutorial paper' (see its --help)")
    p.add_argument("--profile", choices=PROFILES, default="auto",
                   help="sizes and steps: 'standard' (the results of the README: all methods and 3 seeds "
                        "in about 8 minutes on 2 CPU cores), "
                        "'quick' (a smoke test for CI, about a minute; "
                        "its numbers show nothing), 'full' (a larger GPU profile, opt-in; never run "
                        "end to end, so its time and results are unmeasured); 'auto' = standard (default)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the networks train; 'auto' = cuda if available, else cpu (default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED",
                   help="seeds; mean ± std are over these (default: 0 1 2)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS), metavar="METHOD",
                   help=f"methods to run, any of {' '.join(METHODS)} (default: all but the opt-in "
                        "control mcd_pemd_shuffled); the identity reference row is always added")
    p.add_argument("--target", choices=tuple(DENSE_TARGET_CONTRASTS), default=None,
                   help="moving contrast of the embedded target domain: t2 (simulated T2w, the default), "
                        "flair (simulated FLAIR-like: no intensity inversion turns it into T1w) or pd; "
                        "each uses the λ chosen for it without labels")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="output folder for results.json, results.md and figures (default: results)")
    p.add_argument("--fixed", metavar="PATH",
                   help="your fixed NIfTI volume (e.g. T1w); with --moving it replaces the target domain")
    p.add_argument("--moving", metavar="PATH",
                   help="your moving NIfTI volume (e.g. T2w), aligned with --fixed")
    p.add_argument("--select-lambda", type=float, nargs="+", metavar="LAMBDA",
                   help="choose λ (and half or all of the MCD iterations) of every MCD row per seed from "
                        "this grid without target labels: the λ whose network makes the fixed and the "
                        "warped moving validation images most alike (MIND-SSD), among those that keep "
                        "the source accuracy (docs/selection.md); one adaptation per λ. Meant for "
                        "your own target (--fixed/--moving)")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="write training checkpoints there (needed for --resume)")
    p.add_argument("--save-models", metavar="DIR",
                   help="write every trained network as DIR/seed<S>/<method>.pt (load with "
                        "pemd_tutorial.load_model)")
    p.add_argument("--resume", action="store_true",
                   help="continue every training phase from its checkpoint in --checkpoint-dir")
    p.add_argument("--config-json", metavar="PATH",
                   help="JSON object of Config fields overriding the profile, e.g. {\"adapt_steps\": 100}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _config_overrides(args: argparse.Namespace, parser: argparse.ArgumentParser, kind: str) -> dict:
    """The JSON object of ``--config-json`` (``{}`` without it); bad files end in ``parser.error``."""
    if args.config_json is None:
        return {}
    path = Path(args.config_json)
    if not path.is_file():
        parser.error(f"--config-json: file not found: {str(path)!r}")
    try:
        overrides = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        parser.error(f"--config-json: {str(path)!r} is not valid JSON ({err})")
    if not isinstance(overrides, dict):
        parser.error(f"--config-json: {str(path)!r} must hold a JSON object of {kind} fields")
    return overrides


def _resolve_device(choice: str, parser: argparse.ArgumentParser) -> str:
    """``--device``: 'auto' -> cuda if available, else cpu; cuda without CUDA is an error."""
    import torch

    cuda = torch.cuda.is_available()
    if choice == "cuda" and not cuda:
        parser.error("--device cuda: CUDA is not available on this machine (use --device cpu or auto)")
    return ("cuda" if cuda else "cpu") if choice == "auto" else choice


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """Resolve ``--device``, ``--profile`` and ``--config-json`` into ``(Config, profile)``.

    Bad input ends in ``parser.error`` (exit status 2, a message naming the option).
    """
    from pemd_tutorial.config import Config

    device = _resolve_device(args.device, parser)
    profile = "standard" if args.profile == "auto" else args.profile
    overrides = _config_overrides(args, parser, "Config")
    overrides = {"device": device, **overrides} if "device" not in overrides else overrides
    target = getattr(args, "target", None)
    if target is not None:
        if "target_contrast" in overrides and overrides["target_contrast"] != target:
            parser.error(f"--target {target} contradicts target_contrast "
                         f"{overrides['target_contrast']!r} of --config-json")
        overrides["target_contrast"] = target
    factory = getattr(Config, profile)
    try:
        from dataclasses import fields

        unknown = set(overrides) - {f.name for f in fields(Config)}
        if unknown:
            raise ValueError(f"unknown Config fields {sorted(unknown)}")
        cfg = factory(**overrides)
    except (TypeError, ValueError) as err:
        parser.error(f"--config-json: {err}")
    return cfg, profile


def build_register_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pemd_tutorial register``."""
    p = argparse.ArgumentParser(
        prog="python -m pemd_tutorial register",
        description=(
            "Register a moving NIfTI volume (e.g. T2w) to a fixed one (e.g. T1w) slice by slice with a "
            "trained network or the MIND baseline. The moving volume is resampled onto the fixed grid "
            "when the grids differ. Writes moved.nii.gz, field.nii.gz (mm, world axes), "
            "uncertainty.nii.gz, montage/slice_<k>.png and metrics.json in the fixed image's space."
        ),
    )
    p.add_argument("--fixed", required=True, metavar="PATH", help="the fixed NIfTI volume (e.g. T1w)")
    p.add_argument("--moving", required=True, metavar="PATH",
                   help="the moving NIfTI volume (e.g. T2w), on any grid")
    p.add_argument("--model", default="pretrained:mcd_pemd", metavar="MODEL",
                   help="pretrained:<name> (source, mcd_l1, mcd_swd, mcd_pemd, oracle), the path of a "
                        "model file written by --save-models / save_model, or 'mind' (no network); "
                        "default: pretrained:mcd_pemd")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--mask", metavar="PATH",
                   help="foreground mask on the fixed grid (default: a threshold of the fixed image, "
                        "holes filled)")
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=2,
                   help="slicing axis of the RAS+ volume: 0 sagittal, 1 coronal, 2 axial (default)")
    p.add_argument("--slices", metavar="A:B",
                   help="slices along --axis, end exclusive (default: every slice with >= 2%% foreground)")
    p.add_argument("--volume-index", type=int, metavar="N", help="which volume of a 4D file to use")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the network runs (default: cuda if available, else cpu)")
    p.add_argument("--no-montage", action="store_true", help="do not write the PNG montages")
    return p


def register_main(argv: Sequence[str]) -> int:
    """``python -m pemd_tutorial register ...``: returns the exit status (2 on bad input)."""
    import warnings

    from pemd_tutorial.registration import register

    parser = build_register_parser()
    args = parser.parse_args(argv)
    device = _resolve_device(args.device, parser)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = register(args.fixed, args.moving, model=args.model, out=args.out, mask=args.mask,
                              axis=args.axis, slices=args.slices, volume_index=args.volume_index,
                              device=device, montage=not args.no_montage)
        except (OSError, ValueError, TypeError) as err:
            parser.error(str(err))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    m = result.metrics
    if result.resampled:
        print(f"the moving volume was resampled onto the fixed grid {list(m['fixed_shape'])}")
    print(f"registered {len(result.slices)} slices along axis {args.axis} with {args.model}")
    print(f"normalised mutual information (higher = more similar): {m['nmi_before']:.4f} -> "
          f"{m['nmi_after']:.4f}")
    print(f"MIND-SSD (lower = more similar):                      {m['mind_ssd_before']:.4f} -> "
          f"{m['mind_ssd_after']:.4f}")
    print(f"wrote {', '.join(sorted(k for k in result.files if not k.startswith('montage/')))} and "
          f"{sum(k.startswith('montage/') for k in result.files)} montages to {args.out}")
    return 0


def build_paper_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pemd_tutorial paper``."""
    from pemd_tutorial.config import PAPER_METHODS, TARGET_CONTRASTS

    p = argparse.ArgumentParser(
        prog="python -m pemd_tutorial paper",
        description=(
            "The paper's own experiment: 25-class patch registration with the slides' concatenation "
            "network, fresh training pairs every step, no adaptation, MCD with SWD, L1, pEMD (2 and 16 "
            "angles) and pEMD (16) + SWD, an oracle and the MIND baseline. Writes paper_results.json, "
            "paper_results.md and paper_accuracy.png. The standard profile takes about 9 minutes on 2 "
            "CPU cores for 3 seeds (the T2w column) and less than 1 GB of memory; each extra --targets "
            "column adds about 6 minutes."
        ),
    )
    p.add_argument("--profile", choices=("auto", "standard", "quick"), default="auto",
                   help="'standard' (the documented results; default) or 'quick' (a smoke test for CI, "
                        "under a minute; its numbers show nothing)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the networks train; 'auto' = cuda if available, else cpu (default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED",
                   help="seeds; mean ± std are over these (default: 0 1 2)")
    p.add_argument("--methods", nargs="+", choices=list(PAPER_METHODS), default=list(PAPER_METHODS),
                   metavar="METHOD", help=f"rows to run, any of {' '.join(PAPER_METHODS)} (default: all); "
                                          "no registration and MIND are always added")
    p.add_argument("--targets", nargs="+", choices=list(TARGET_CONTRASTS), metavar="CONTRAST",
                   help=f"target contrasts, any of {' '.join(TARGET_CONTRASTS)} (default: t2)")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="output folder for paper_results.* (default: results)")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="write training checkpoints there (needed for --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue every training phase from its checkpoint in --checkpoint-dir")
    p.add_argument("--save-models", metavar="DIR",
                   help="write the first seed's networks as DIR/<contrast>/<method>.pt (load with "
                        "pemd_tutorial.load_model)")
    p.add_argument("--config-json", metavar="PATH",
                   help="JSON object of PaperConfig fields overriding the profile, "
                        "e.g. {\"adapt_steps\": 100}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def paper_main(argv: Sequence[str]) -> int:
    """``python -m pemd_tutorial paper ...``: returns the exit status (2 on bad input)."""
    from pemd_tutorial.config import PaperConfig
    from pemd_tutorial.paper import paper_markdown, run_paper_experiment, write_paper_report

    parser = build_paper_parser()
    args = parser.parse_args(list(argv))
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds must be distinct integers >= 0, got {args.seeds}")
    device = _resolve_device(args.device, parser)
    overrides = _config_overrides(args, parser, "PaperConfig")
    if args.targets:
        overrides["target_contrasts"] = list(args.targets)
    try:
        base = PaperConfig.quick() if args.profile == "quick" else PaperConfig.standard()
        cfg = PaperConfig.from_dict({**base.to_dict(), "device": device, **overrides})
    except (TypeError, ValueError) as err:
        parser.error(f"--config-json: {err}")
    profile = "quick" if args.profile == "quick" else "standard"
    print(f"pemd-tutorial paper experiment: profile {profile!r}, device {cfg.device!r}, seeds {args.seeds}, "
          f"targets {' '.join(cfg.target_contrasts)}, methods {' '.join(args.methods)}", flush=True)
    try:
        results = run_paper_experiment(cfg, seeds=args.seeds, methods=args.methods,
                                       progress=not args.no_progress, checkpoint_dir=args.checkpoint_dir,
                                       resume=args.resume)
    except ValueError as err:  # e.g. a checkpoint of another run
        parser.error(str(err))
    results["command"] = " ".join(["python -m pemd_tutorial paper", *argv])
    write_paper_report(results, args.out)
    if args.save_models:
        from pemd_tutorial.pretrained import save_model

        for key, net in results["networks"].items():
            contrast, method = key.split("/")
            save_model(net, Path(args.save_models) / contrast / f"{method}.pt",
                       metadata={"experiment": "paper", "method": method, "contrast": contrast,
                                 "seed": args.seeds[0]})
    print(paper_markdown(results))
    print(f"wrote {Path(args.out) / 'paper_results.json'}, paper_results.md and paper_accuracy.png "
          f"(wall time {results['wall_time_s']:.0f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the main job (or ``register``); returns the exit status (argparse exits with 2 on bad options)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["register"]:
        return register_main(argv[1:])
    if argv[:1] == ["paper"]:
        return paper_main(argv[1:])
    for alias in (["--experiment", "paper"], ["--experiment=paper"]):  # the older spelling
        for i in range(len(argv) - len(alias) + 1):
            if argv[i:i + len(alias)] == alias:
                print("note: '--experiment paper' is the older spelling of 'python -m pemd_tutorial paper'",
                      file=sys.stderr)
                return paper_main(argv[:i] + argv[i + len(alias):])
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.fixed is None) != (args.moving is None):
        parser.error("--fixed and --moving must be given together")
    for opt, path in (("--fixed", args.fixed), ("--moving", args.moving)):
        if path is not None and not Path(path).is_file():
            parser.error(f"{opt}: NIfTI file not found: {path!r}")
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir")
    if args.target is not None and args.fixed is not None:
        parser.error("--target chooses the embedded target contrast; with --fixed/--moving your moving "
                     "volume is the target")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds must be distinct integers >= 0, got {args.seeds}")
    cfg, profile = config_from_args(args, parser)
    if args.fixed is not None:
        from pemd_tutorial.experiment import load_user_slices

        try:
            load_user_slices(args.fixed, args.moving, cfg)
        except (OSError, ValueError) as err:
            parser.error(f"--fixed/--moving: {err}")

    from pemd_tutorial.experiment import run_experiment
    from pemd_tutorial.report import results_markdown

    argv_list = argv
    print(f"pemd-tutorial main job: profile {profile!r} ({PROFILE_NOTES[profile]}), device {cfg.device!r}, "
          f"seeds {args.seeds}, methods {' '.join(args.methods)}", flush=True)
    if args.fixed is not None:
        print(f"target domain = your pair {args.fixed} (fixed) / {args.moving} (moving): "
              "synthetic deformations of your held-out slices are the test pairs", flush=True)
    results = run_experiment(
        cfg, methods=args.methods, seeds=args.seeds, out_dir=args.out, progress=not args.no_progress,
        fixed=args.fixed, moving=args.moving, checkpoint_dir=args.checkpoint_dir, resume=args.resume,
        save_models=args.save_models, lambda_grid=args.select_lambda,
        command=" ".join(["python -m pemd_tutorial", *argv_list]),
    )
    print(results_markdown(results))
    print(f"wrote {Path(args.out) / 'results.json'}, results.md and figures (wall time "
          f"{results['wall_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
