"""The generic training loop, its checkpoints and resumption.

:func:`run_phase` is what every training phase of :mod:`pemd_tutorial.training` runs: it calls one
``step_fn`` per step, logs, validates every ``cfg.val_every`` steps, shows a tqdm progress bar,
checkpoints every ``cfg.checkpoint_every`` steps and, with ``resume=True``, continues from the last
checkpoint. On the CPU a resumed run ends bit-identical to an uninterrupted one (tested).

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists, tuples and
dicts, so it loads with ``torch.load(..., weights_only=True)`` (no arbitrary pickles). It is
written to a temporary file in the same folder, flushed to disk and moved over the old one with
``os.replace`` (:func:`save_checkpoint`): at any moment the path holds either the previous or the
new complete checkpoint, never a partial one, so a run killed at any point can resume from it. It
holds the model, both optimisers, the batch samplers' generators, the global RNG states (torch,
CUDA, numpy, ``random``), the step and the log, and what must match for a resume (the phase, the
seed, the sizes); a checkpoint of another run is refused.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pemd_tutorial.config import Config, PaperConfig
from pemd_tutorial.evaluate import fetch_batch, label_accuracy, predict
from pemd_tutorial.model import TwoHeadedNet

__all__ = [
    "batch_source",
    "capture_rng_state",
    "fetch_batch",
    "flushing_denormals",
    "load_checkpoint",
    "make_optimizers",
    "model_device",
    "pair_keys",
    "phase_seed",
    "restore_rng_state",
    "run_phase",
    "save_checkpoint",
]

#: What the engine trains, and the configurations it reads.
Network = TwoHeadedNet
AnyConfig = Config | PaperConfig


# --------------------------------------------------------------------------------------------
# Checkpoint files and RNG state
# --------------------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + ``os.replace``).

    Args:
        path: destination file; its folder is created if needed.
        state: a dict of tensors, numbers, strings, lists, tuples and dicts.

    Returns:
        The path written.
    """
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint() 'state' must be a dict, got {type(state).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"load_checkpoint() 'path' does not exist: {str(path)!r}")
    return torch.load(path, map_location="cpu", weights_only=True)


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states of torch (CPU and every CUDA device), numpy and ``random``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global state)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored when CUDA is available)."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------
# Batches, seeds, optimisers
# --------------------------------------------------------------------------------------------


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's parameters."""
    return next(model.parameters()).device


def phase_seed(seed: int, phase: str) -> int:
    """A stable per-phase seed (crc32 of the phase name), so phases draw independent batches."""
    return (int(seed) * 1_000_003 + zlib.crc32(phase.encode())) % (2**63)


def make_optimizers(model: Network, lr: float) -> dict[str, torch.optim.Optimizer]:
    """Separate Adam optimisers ``{"generator": G, "heads": F1 + F2}`` with learning rate ``lr``."""
    return {
        "generator": torch.optim.Adam(model.generator_parameters(), lr=lr),
        "heads": torch.optim.Adam(model.head_parameters(), lr=lr),
    }


def pair_keys(pairs) -> tuple[str, ...]:
    """The keys a pair dataset or a pair sampler provides (``pairs.keys()`` or its first item's)."""
    if not hasattr(pairs, "keys"):
        return tuple(pairs[0].keys())
    keys = pairs.keys  # a method of the patch pairs, a property of PairDataset
    return tuple(keys() if callable(keys) else keys)


def batch_source(pairs, batch_size: int, gen: torch.Generator, keys, device) -> Callable[[], dict]:
    """A function that returns the next training batch (a dict of ``keys`` on ``device``).

    ``pairs`` is either a **sampler** with ``draw_batch(batch_size, generator)`` (e.g.
    :class:`data_utils.patches.PatchSampler`): every call draws new pairs; or a fixed **dataset**
    (``len`` and ``batch``/``__getitem__``): every call draws ``batch_size`` random indices. Either
    way all randomness comes from ``gen``, whose state a checkpoint saves, so a resumed run draws
    the same batches as an uninterrupted one.
    """
    keys = tuple(keys)
    if hasattr(pairs, "draw_batch"):
        def draw() -> dict:
            b = pairs.draw_batch(batch_size, gen)
            return {k: b[k].to(device) for k in keys}
        return draw
    n = len(pairs)
    return lambda: fetch_batch(pairs, torch.randint(n, (batch_size,), generator=gen).tolist(), keys, device)


def flushing_denormals() -> bool:
    """Whether the CPU flushes denormal floats to zero now (``torch.set_flush_denormal``).

    torch can set the mode but not report it; a denormal times one reads it: the product is the
    denormal itself, or zero while flushing.
    """
    return float(torch.tensor([1e-39], dtype=torch.float32).mul(1.0)) == 0.0


class _Validator:
    """Accuracy of the mean of F1 and F2 on a labelled (evaluation-view) val split."""

    def __init__(self, val, batch_size: int):
        b = fetch_batch(val, range(len(val)), ("labels", "mask", "inside"), "cpu")
        self.val, self.batch_size = val, batch_size
        self.labels, self.valid = b["labels"], b["mask"] & b["inside"]

    def __call__(self, model: Network) -> float:
        return label_accuracy(predict(model, self.val, batch_size=self.batch_size, combine="mean"),
                              self.labels, self.valid)


def run_phase(
    *,
    phase: str,
    model: Network,
    cfg: AnyConfig,
    steps: int,
    step_fn: Callable[[], dict[str, float]],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, torch.Generator],
    meta: dict[str, Any],
    val,
    checkpoint_dir,
    resume: bool,
    progress: bool | str,
) -> list[dict]:
    """Run ``steps`` steps of one training phase; return its log (one dict per step).

    Args:
        phase: the phase's name (``"source"``, ``"adapt_pemd"``, ...): the checkpoint file is
            ``checkpoint_dir/<phase>.pt`` and the progress bar's label.
        model: the network being trained (saved in checkpoints).
        cfg: sizes and settings (``val_every``, ``checkpoint_every``; the fields that must match
            for a resume).
        steps: the phase's total number of steps.
        step_fn: one training step; returns the numbers to log (``{"source_ce": ..., ...}``).
        optimizers: saved and restored with the checkpoint.
        generators: the phase's random generators (batch samplers, SWD directions), saved too.
        meta: what else identifies the run (phase, seed, lambda, ...); a checkpoint whose meta
            differs is refused.
        val: an optional labelled evaluation view; ``"val_acc"`` (accuracy of F1 + F2) is logged
            every ``cfg.val_every`` steps and at the last step, else ``None``.
        checkpoint_dir: folder for checkpoints (``None``: none written).
        resume: continue from ``checkpoint_dir/<phase>.pt`` if it exists.
        progress: show a tqdm progress bar; ``"text"``: instead, print one plain line when the
            phase ends (steps, seconds, last validation accuracy), which a saved notebook keeps
            as it is (a widget bar's saved text shows its first state).

    Raises:
        ValueError: ``resume=True`` with a checkpoint of another run, or one beyond ``steps``.
    """
    if not isinstance(progress, bool) and progress != "text":
        raise ValueError(f"run_phase() 'progress' must be True, False or 'text', got {progress!r}")
    path = Path(checkpoint_dir) / f"{phase}.pt" if checkpoint_dir is not None else None
    # what must match for a resume: everything but where/how long/how often (and the other lambdas)
    free = (
        "device",
        "checkpoint_every",
        "val_every",
        "source_steps",
        "adapt_steps",
        "oracle_steps",
        "lambdas",
        "n_val",
        "n_test",
        "target_contrasts",
    )
    meta = {**meta, "network": type(model).__name__,
            "config": {k: v for k, v in cfg.to_dict().items() if k not in free}}
    log: list[dict] = []
    start = 0
    if resume and path is not None and path.is_file():
        state = load_checkpoint(path)
        written_by = state.get("meta", {}).get("network", "RegistrationNet")
        if written_by != meta["network"]:
            raise ValueError(
                f"resume=True: the checkpoint {str(path)!r} holds a {written_by} (the "
                f"{'paper experiment' if written_by == 'ConcatNet' else 'main job'}), not a "
                f"{meta['network']}: use another --checkpoint-dir"
            )
        if state.get("meta") != meta:
            raise ValueError(
                f"resume=True: the checkpoint {str(path)!r} was written by another run "
                f"({state.get('meta')}) than this one ({meta})"
            )
        if state["step"] > steps:
            raise ValueError(f"resume=True: the checkpoint is at step {state['step']} > 'steps'={steps}")
        model.load_state_dict(state["model"])
        for k, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, gen in generators.items():
            gen.set_state(state["generators"][k])
        restore_rng_state(state["rng"])
        start, log = int(state["step"]), list(state["log"])

    def save(step: int) -> None:
        save_checkpoint(
            path,
            {
                "meta": meta,
                "step": step,
                "log": log,
                "model": model.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "generators": {k: g.get_state() for k, g in generators.items()},
                "rng": capture_rng_state(),
                "config": cfg.to_dict(),
            },
        )

    validator = _Validator(val, cfg.batch_size * 4) if val is not None and cfg.val_every > 0 else None
    model.train()
    text = progress == "text"
    bar = tqdm(total=steps, initial=start, desc=phase, disable=not progress or text, leave=False)
    started = time.perf_counter()
    # tiny softmax probabilities and their gradients are denormal floats, which a CPU handles on a
    # slow path: flushing them to zero made an MCD iteration about 10 % faster on 2 cores
    was_flushing = flushing_denormals()
    flushed = torch.set_flush_denormal(True)
    try:
        for step in range(start, steps):
            row: dict[str, Any] = {"step": step + 1, "phase": phase}
            row.update(step_fn())
            last = step + 1 == steps
            due = validator is not None and ((step + 1) % cfg.val_every == 0 or last)
            row["val_acc"] = validator(model) if due else None
            log.append(row)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if isinstance(v, float)}, refresh=False)
            if (
                path is not None
                and cfg.checkpoint_every > 0
                and ((step + 1) % cfg.checkpoint_every == 0 or last)
            ):
                save(step + 1)
    finally:
        bar.close()
        if flushed and not was_flushing:  # the caller's mode, not torch's default, is restored
            torch.set_flush_denormal(False)
    if text:
        accs = [r["val_acc"] for r in log if r.get("val_acc") is not None]
        print(f"{phase}: {steps - start} steps in {time.perf_counter() - started:.0f} s"
              + (f", validation accuracy {100 * accs[-1]:.1f} %" if accs else ""), flush=True)
    return log
