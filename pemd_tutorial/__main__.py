"""The command line: ``python -m pemd_tutorial [COMMAND] ...`` (or the ``pemd-tutorial`` console script).

One argparse parser with three commands; without a command, ``run`` is meant::

    python -m pemd_tutorial                       # = run: the main job, standard profile
    python -m pemd_tutorial run --profile quick --seeds 0 --methods mind source mcd_pemd   # smoke test
    python -m pemd_tutorial --save-models models  # also write every trained network
    python -m pemd_tutorial --fixed t1.nii.gz --moving t2.nii.gz --out results_mine
    python -m pemd_tutorial --config-json tiny.json --out /tmp/r   # {"image_size": 32, ...} overrides
    python -m pemd_tutorial paper                 # the paper's own patch experiment
    python -m pemd_tutorial register --fixed sub01_T1w.nii.gz --moving sub01_T2w.nii.gz \
        --out results_sub01 [--model mind] [--mask brain.nii.gz] [--axis 2] [--slices 40:90]

``run`` calls :func:`pemd_tutorial.experiment.run_experiment`, ``paper``
:func:`pemd_tutorial.paper.run_paper_experiment` and ``register`` :func:`pemd_tutorial.register`.
The device is resolved in one place (:func:`resolve_device`); ``--config-json`` goes through
``from_dict`` of the command's configuration class; bad input ends with exit status 2 and a
message naming the option.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from data_utils.embedded import N_FOLDS
from pemd_tutorial.config import (
    DENSE_TARGET_CONTRASTS,
    PAPER_METHODS,
    PAPER_TARGET_CONTRASTS,
    Config,
    PaperConfig,
)
from pemd_tutorial.experiment import DEFAULT_METHODS, METHODS, load_user_slices, run_experiment
from pemd_tutorial.paper import run_paper_experiment
from pemd_tutorial.pretrained import PRETRAINED_NAMES, save_model
from pemd_tutorial.registration import MONTAGE_SLICES, MOVED_UNITS, PREALIGN_KINDS, register
from pemd_tutorial.report import paper_markdown, results_markdown, write_paper_report

__all__ = ["COMMANDS", "PROFILES", "PROFILE_NOTES", "build_parser", "config_from_args", "main",
           "resolve_device"]

#: The commands; the first is the default.
COMMANDS = ("run", "paper", "register")
#: Choices of ``run --profile`` ("auto" selects "standard" on every device).
PROFILES = ("auto", "standard", "quick", "full")
#: What each profile is, printed when the main job starts.
PROFILE_NOTES = {
    "standard": "the default: the README's results, about 7 minutes on 2 CPU cores",
    "quick": "a smoke test: about a minute; too short to show any method's effect",
    "full": "opt-in GPU profile, never run end to end: its time and results are unmeasured",
}



def _device_options() -> argparse.ArgumentParser:
    """``--device``, an option of every command (an argparse parent parser)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the networks run: 'auto' = cuda if available, else cpu (default)")
    return p


def _training_options(config_class: str) -> argparse.ArgumentParser:
    """The options that ``run`` and ``paper`` share (an argparse parent parser): seeds, checkpoints,
    ``--config-json`` with fields of ``config_class``, progress bars."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED",
                   help="seeds; mean ± std are over these (default: 0 1 2)")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="write training checkpoints there (needed for --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue every training phase from its checkpoint in --checkpoint-dir")
    p.add_argument("--config-json", metavar="PATH",
                   help=f"JSON object of {config_class} fields overriding the profile, "
                        'e.g. {"adapt_steps": 100}')
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run", allow_abbrev=False, parents=[_device_options(), _training_options("Config")],
        help="the main job (the default command): dense registration, all methods, 3 seeds; "
             "about 7 minutes on 2 CPU cores",
        description=(
            "The main job: dense registration on the embedded MNI152 slices (T1w -> simulated T2w), "
            "training source-only, the inverted-contrast baseline, MCD-L1, MCD-SWD, MCD-pEMD and an "
            "oracle, and running the MIND baseline. The standard profile takes about 7 minutes on 2 "
            "CPU cores for 3 seeds (437 s measured) and about 0.7 GB of memory."
        ),
        epilog="Writes to --out: results.json (every number, the configuration and the command), "
               "results.md (the table), accuracy.png, examples.png and distributions.png.",
    )
    p.add_argument("--experiment", choices=("main", "paper"), default="main",
                   help="'paper' is the older spelling of 'python -m pemd_tutorial paper' (see its --help)")
    p.add_argument("--profile", choices=PROFILES, default="auto",
                   help="sizes and steps: 'standard' (the results of the README: all methods and 3 seeds "
                        "in about 7 minutes on 2 CPU cores), 'quick' (a smoke test, about a minute; its "
                        "numbers show nothing), 'full' (a larger GPU profile, opt-in; never run end to "
                        "end, so its time and results are unmeasured); 'auto' = standard (default)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS), metavar="METHOD",
                   help=f"methods to run, any of {' '.join(METHODS)} (default: all but the opt-in rows: "
                        "the controls mcd_pemd_shuffled and mcd_swd_rescaled and the label-free "
                        "alternatives); the identity reference row is always added")
    p.add_argument("--target", choices=tuple(DENSE_TARGET_CONTRASTS), default=None,
                   help="moving contrast of the embedded target domain: t2 (simulated T2w, the default), "
                        "flair (simulated FLAIR-like: no intensity inversion turns it into T1w), "
                        "flair_lesion (FLAIR-like with lesions the T1w lacks, a thick direction and a bias "
                        "field: no intensity map of the T1w gives it) or pd; each uses the λ chosen for it "
                        "or for FLAIR-like without labels")
    p.add_argument("--test-fold", type=int, choices=range(N_FOLDS), default=None, metavar="K",
                   help=f"which 8-slice block of the embedded data is the test block, 0-{N_FOLDS - 1} "
                        "(default 0: the shipped split); the training slices are the other blocks")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="output folder for results.json, results.md and figures (default: results)")
    p.add_argument("--fixed", metavar="PATH",
                   help="your fixed NIfTI volume (e.g. T1w); with --moving it replaces the target domain")
    p.add_argument("--moving", metavar="PATH",
                   help="your moving NIfTI volume (e.g. T2w) of the same subject; resampled onto the "
                        "fixed grid when the grids differ")
    p.add_argument("--select-lambda", type=float, nargs="+", metavar="LAMBDA",
                   help="choose λ (and half or all of the MCD iterations) of every MCD row per seed from "
                        "this grid without target labels: the λ whose network makes the fixed and the "
                        "warped moving validation images most alike (MIND-SSD), among those that keep "
                        "the source accuracy (docs/selection.md); one adaptation per λ. Meant for "
                        "your own target (--fixed/--moving)")
    p.add_argument("--save-models", metavar="DIR",
                   help="write every trained network as DIR/seed<S>/<method>.pt (load with "
                        "pemd_tutorial.load_model)")
    p.set_defaults(handler=_run, parser=p)


def _add_paper(sub) -> None:
    p = sub.add_parser(
        "paper", allow_abbrev=False, parents=[_device_options(), _training_options("PaperConfig")],
        help="the paper's own 25-class patch experiment; about 9 minutes on 2 CPU cores",
        description=(
            "The paper's own experiment: 25-class patch registration with the slides' concatenation "
            "network, fresh training pairs every step, no adaptation, the inverted-contrast baseline, "
            "MCD with SWD, L1, pEMD (2 and 16 angles) and pEMD (16) + SWD, an oracle and the MIND "
            "baseline. The standard profile takes about 9 minutes on 2 CPU cores for 3 seeds and the "
            "T2w column (505 s measured) and less than 1 GB of memory; each extra --targets column "
            "adds about 6 minutes."
        ),
        epilog="Writes to --out: paper_results.json, paper_results.md and paper_accuracy.png.",
    )
    p.add_argument("--profile", choices=("auto", "standard", "quick"), default="auto",
                   help="'standard' (the documented results; default) or 'quick' (a smoke test, "
                        "under a minute; its numbers show nothing)")
    p.add_argument("--methods", nargs="+", choices=list(PAPER_METHODS), default=list(PAPER_METHODS),
                   metavar="METHOD", help=f"rows to run, any of {' '.join(PAPER_METHODS)} (default: all); "
                                          "no registration and MIND are always added")
    p.add_argument("--targets", nargs="+", choices=list(PAPER_TARGET_CONTRASTS), metavar="CONTRAST",
                   help=f"target contrasts, any of {' '.join(PAPER_TARGET_CONTRASTS)} (default: t2)")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="output folder for paper_results.* (default: results)")
    p.add_argument("--save-models", metavar="DIR",
                   help="write the first seed's networks as DIR/<contrast>/<method>.pt (load with "
                        "pemd_tutorial.load_model)")
    p.set_defaults(handler=_paper, parser=p)


def _add_register(sub) -> None:
    p = sub.add_parser(
        "register", allow_abbrev=False, parents=[_device_options()],
        help="register your own NIfTI pair: 3D rigid pre-alignment, then MIND (default) or a trained "
             "network slice by slice; about 25 s and 1.3 GB for a 1 mm brain on 2 CPU cores",
        description=(
            "Register a moving NIfTI volume (e.g. T2w) to a fixed one (e.g. T1w): a 3D rigid (or affine) "
            "pre-alignment with SimpleITK's Mattes mutual information, which handles a large rigid "
            "misalignment, then the residual local deformation slice by slice with the MIND baseline "
            "(default) or a trained network, each stage kept only if the label-free "
            "similarities (NMI, MIND-SSD) say it helped; warnings name what looks wrong (little "
            "overlap, a wrong or mirrored header, images with no shared information). Slices are "
            "resampled in millimetres (never stretched). A whole 1 mm brain (197x233x189 voxels, moving "
            "image at 1.2 mm) took 25 s (30 s of CPU time) and at most 1.27 GB of memory on 2 CPU cores "
            "(idle), a 0.5 mm one 55 s and 1.58 GB (benchmarks/register_whole_brain.py, 2026-12-04); "
            "finer fixed images are registered on a working grid of about 1 mm."
        ),
        epilog="Writes to --out, in the fixed image's space: moved.nii.gz (in the moving file's units), "
               "field.nii.gz (mm, 64-bit LPS+ vectors as ITK, ANTs, ITK-SNAP and Slicer read them, "
               "pre-alignment included; p + D(p) is the moving point of the fixed point p), prealign.tfm "
               "(the pre-alignment, ITK format), uncertainty.nii.gz, montage/slice_<k>.png for a few "
               "slices and metrics.json (NMI and MIND-SSD after each stage, warnings).",
    )
    p.add_argument("--fixed", required=True, metavar="PATH", help="the fixed NIfTI volume (e.g. T1w)")
    p.add_argument("--moving", required=True, metavar="PATH",
                   help="the moving NIfTI volume (e.g. T2w), on any grid")
    p.add_argument("--model", default="mind", metavar="MODEL",
                   help="'mind' (default: the training-free MIND baseline, no network; the most accurate "
                        "slice-wise step on notebook 04's stand-in pair), "
                        f"pretrained:<name> ({', '.join(PRETRAINED_NAMES)}) or the path of a model file "
                        "written by --save-models / save_model")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--mask", metavar="PATH",
                   help="foreground (brain) mask on the fixed grid (default: a threshold of the fixed "
                        "image, holes filled)")
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=2,
                   help="slicing axis of the RAS+ volume: 0 sagittal, 1 coronal, 2 axial (default)")
    p.add_argument("--slices", metavar="A:B",
                   help="slices along --axis, end exclusive (default: every slice with >= 2%% foreground)")
    p.add_argument("--volume-index", type=int, metavar="N", help="which volume of a 4D file to use")
    p.add_argument("--prealign", choices=PREALIGN_KINDS, default="rigid",
                   help="3D pre-alignment before the slice-wise step (SimpleITK, Mattes mutual information): "
                        "rigid (default), affine or none; written as prealign.tfm and composed into "
                        "field.nii.gz")
    p.add_argument("--moved-units", choices=MOVED_UNITS, default="moving",
                   help="intensities of moved.nii.gz: 'moving' (the moving file's units, default) or "
                        "'normalised' (robust percentiles mapped to [0, 1], as the network saw them)")
    p.add_argument("--montages", type=int, default=MONTAGE_SLICES, metavar="N",
                   help=f"how many slices get a PNG montage, evenly spaced (default {MONTAGE_SLICES})")
    p.add_argument("--no-montage", action="store_true", help="do not write the PNG montages")
    p.set_defaults(handler=_register, parser=p)


def build_parser() -> argparse.ArgumentParser:
    """The one argument parser: commands ``run`` (the default), ``paper`` and ``register``.

    Options must be spelled out (no abbreviations: ``paper --target`` is an error, not
    ``--targets``), so that an option of another command is rejected instead of reinterpreted."""
    root = argparse.ArgumentParser(
        prog="python -m pemd_tutorial", allow_abbrev=False,
        description=(
            "Unsupervised multimodal registration by domain adaptation with projected Earth Mover's "
            "discrepancies (Heinrich & Hansen, MIDL 2020). Without a command, 'run' is meant; "
            "'python -m pemd_tutorial COMMAND --help' describes each command, its run time on 2 CPU "
            "cores and what it writes."
        ),
    )
    sub = root.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    _add_run(sub)
    _add_paper(sub)
    _add_register(sub)
    return root


def resolve_device(choice: str, parser: argparse.ArgumentParser) -> str:
    """``--device``: 'auto' -> cuda if available, else cpu; cuda without CUDA is an error."""
    cuda = torch.cuda.is_available()
    if choice == "cuda" and not cuda:
        parser.error("--device cuda: CUDA is not available on this machine (use --device cpu or auto)")
    return ("cuda" if cuda else "cpu") if choice == "auto" else choice


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


def _check_common(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds must be distinct integers >= 0, got {args.seeds}")


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Config, str]:
    """``run``'s ``--device``, ``--profile``, ``--target`` and ``--config-json`` -> ``(Config, profile)``.

    The profile gives the base (its λ table follows the target contrast), the JSON object overrides
    it through :meth:`Config.from_dict`. Bad input ends in ``parser.error`` (exit status 2).
    """
    device = resolve_device(args.device, parser)
    profile = "standard" if args.profile == "auto" else args.profile
    overrides = _config_overrides(args, parser, "Config")
    overrides = {"device": device, **overrides} if "device" not in overrides else overrides
    if args.target is not None:
        if "target_contrast" in overrides and overrides["target_contrast"] != args.target:
            parser.error(f"--target {args.target} contradicts target_contrast "
                         f"{overrides['target_contrast']!r} of --config-json")
        overrides["target_contrast"] = args.target
    if getattr(args, "test_fold", None) is not None:
        overrides["test_fold"] = args.test_fold
    try:
        base = getattr(Config, profile)(**{k: overrides[k] for k in ("target_contrast",) if k in overrides})
        cfg = Config.from_dict({**base.to_dict(), **overrides})
    except (TypeError, ValueError) as err:
        parser.error(f"--config-json: {err}")
    return cfg, profile


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """``python -m pemd_tutorial [run] ...``: the main job."""
    if (args.fixed is None) != (args.moving is None):
        parser.error("--fixed and --moving must be given together")
    for opt, path in (("--fixed", args.fixed), ("--moving", args.moving)):
        if path is not None and not Path(path).is_file():
            parser.error(f"{opt}: NIfTI file not found: {path!r}")
    _check_common(args, parser)
    if args.target is not None and args.fixed is not None:
        parser.error("--target chooses the embedded target contrast; with --fixed/--moving your moving "
                     "volume is the target")
    cfg, profile = config_from_args(args, parser)
    if args.fixed is not None:
        try:
            load_user_slices(args.fixed, args.moving, cfg)
        except (OSError, ValueError) as err:
            parser.error(f"--fixed/--moving: {err}")
    print(f"pemd-tutorial main job: profile {profile!r} ({PROFILE_NOTES[profile]}), device {cfg.device!r}, "
          f"seeds {args.seeds}, methods {' '.join(args.methods)}", flush=True)
    if args.fixed is not None:
        print(f"target domain = your pair {args.fixed} (fixed) / {args.moving} (moving): "
              "synthetic deformations of your held-out slices are the test pairs", flush=True)
    results = run_experiment(
        cfg, methods=args.methods, seeds=args.seeds, out_dir=args.out, progress=not args.no_progress,
        fixed=args.fixed, moving=args.moving, checkpoint_dir=args.checkpoint_dir, resume=args.resume,
        save_models=args.save_models, lambda_grid=args.select_lambda,
        command=" ".join(["python -m pemd_tutorial", *argv]),
    )
    print(results_markdown(results))
    print(f"wrote {Path(args.out) / 'results.json'}, results.md and figures (wall time "
          f"{results['wall_time_s']:.0f} s)")
    return 0


def _paper(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """``python -m pemd_tutorial paper ...``: the paper's patch experiment."""
    _check_common(args, parser)
    device = resolve_device(args.device, parser)
    overrides = _config_overrides(args, parser, "PaperConfig")
    if args.targets:
        overrides["target_contrasts"] = list(args.targets)
    profile = "quick" if args.profile == "quick" else "standard"
    try:
        base = getattr(PaperConfig, profile)()
        cfg = PaperConfig.from_dict({**base.to_dict(), "device": device, **overrides})
    except (TypeError, ValueError) as err:
        parser.error(f"--config-json: {err}")
    print(f"pemd-tutorial paper experiment: profile {profile!r}, device {cfg.device!r}, seeds {args.seeds}, "
          f"targets {' '.join(cfg.target_contrasts)}, methods {' '.join(args.methods)}", flush=True)
    try:
        results = run_paper_experiment(cfg, seeds=args.seeds, methods=args.methods,
                                       progress=not args.no_progress, checkpoint_dir=args.checkpoint_dir,
                                       resume=args.resume)
    except ValueError as err:  # e.g. a checkpoint of another run
        parser.error(str(err))
    results["command"] = " ".join(["python -m pemd_tutorial", *argv])
    write_paper_report(results, args.out)
    if args.save_models:
        for key, net in results["networks"].items():
            contrast, method = key.split("/")
            save_model(net, Path(args.save_models) / contrast / f"{method}.pt",
                       metadata={"experiment": "paper", "method": method, "contrast": contrast,
                                 "seed": args.seeds[0]})
    print(paper_markdown(results))
    print(f"wrote {Path(args.out) / 'paper_results.json'}, paper_results.md and paper_accuracy.png "
          f"(wall time {results['wall_time_s']:.0f} s)")
    return 0


def _register(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """``python -m pemd_tutorial register ...``: register the user's NIfTI pair."""
    device = resolve_device(args.device, parser)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = register(args.fixed, args.moving, model=args.model, out=args.out, mask=args.mask,
                              axis=args.axis, slices=args.slices, volume_index=args.volume_index,
                              device=device, montage=not args.no_montage, prealign=args.prealign,
                              moved_units=args.moved_units, montage_slices=args.montages)
        except (OSError, ValueError, TypeError, ImportError) as err:
            parser.error(str(err))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    m = result.metrics
    if result.resampled:
        print(f"the moving volume was resampled onto the fixed grid {list(m['fixed_shape'])}")
    if result.prealignment is not None:
        print(f"pre-aligned ({args.prealign}, from {result.prealignment.start}): prealign.tfm")
    print(f"registered {len(result.slices)} slices along axis {args.axis} with {args.model} "
          f"({result.model_space['pixel_mm']:.2f} mm per model pixel)")
    print("similarity over the fixed foreground: NMI (higher = more similar), MIND-SSD (lower = more "
          "similar)")
    for stage, values in m["stages"].items():
        print(f"  {stage:<11} NMI {values['nmi']:.4f}  MIND-SSD {values['mind_ssd']:.4f}")
    print(f"kept: {m['kept']}" + (f" ({len(m['warnings'])} warnings above)" if m["warnings"] else ""))
    print(f"wrote {', '.join(sorted(k for k in result.files if not k.startswith('montage/')))} and "
          f"{sum(k.startswith('montage/') for k in result.files)} montages to {args.out}")
    return 0


def _older_spelling(argv: list[str]) -> list[str]:
    """``--experiment paper`` (the older spelling) -> ``paper``, with a note; other argv unchanged."""
    for alias in (["--experiment", "paper"], ["--experiment=paper"]):
        for i in range(len(argv) - len(alias) + 1):
            if argv[i:i + len(alias)] == alias:
                print("note: '--experiment paper' is the older spelling of 'python -m pemd_tutorial paper'",
                      file=sys.stderr)
                rest = argv[:i] + argv[i + len(alias):]
                return ["paper", *(rest[1:] if rest[:1] == ["run"] else rest)]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run its command; returns the exit status (argparse exits with 2 on bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]
    argv = _older_spelling(argv)
    args = build_parser().parse_args(argv)
    shown = argv[1:] if argv[0] == "run" else argv  # the command as the user would type it
    return args.handler(args, args.parser, shown)


if __name__ == "__main__":
    sys.exit(main())
