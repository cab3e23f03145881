"""Evaluation: label accuracy, within-one accuracy, end-point error and image similarity after warping.

All metrics are computed on the control points where the true label is meaningful: the foreground
``mask`` of the fixed image and ``inside`` (the true displacement lies on the label grid; see
:meth:`data_utils.grid.LabelGrid.quantise`). Conventions (label order, ``(dx, dy)``, pixels,
backward warping) are those of :mod:`data_utils.grid`.

* **accuracy**: share of valid control points whose arg-max label equals the quantised true label.
* **within_one**: share whose arg-max label is at Chebyshev distance ``<= 1`` from the true label
  on the ``(2R + 1) x (2R + 1)`` grid (one of the 9 labels around it).
* **epe**: mean Euclidean norm, in pixels, of the expected displacement ``sum_l p_l d_l`` minus the
  true (unquantised) displacement.
* **ncc**: image similarity after warping. The expected control-point displacements are
  interpolated to a dense field (:func:`dense_field`), the moving image is warped with it
  (:func:`data_utils.warp`) and compared with the moving image warped by the *true* field, by
  normalised cross-correlation over the fixed image's foreground. Comparing two warps of the same
  moving image keeps the comparison mono-modal in the target domain (fixed T1w vs moving T2w).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from data_utils import control_to_dense, warp
from data_utils.grid import LabelGrid, check_control_spacing

__all__ = [
    "dense_field",
    "dense_mask",
    "fetch_batch",
    "mean_std",
    "heads_mean",
    "label_accuracy",
    "pairs_accuracy",
    "predict",
    "true_label_histogram",
    "evaluate_model",
    "evaluate_probs",
    "example_registrations",
    "identity_probs",
    "label_metrics",
    "masked_ncc",
]


def _check_probs(probs: Any, grid: LabelGrid, name: str = "probs") -> None:
    if not isinstance(probs, torch.Tensor) or probs.dim() != 4:
        shape = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(f"'{name}' must be a tensor of shape (N, L, Hc, Wc), got {shape}")
    if probs.shape[1] != grid.n_labels:
        raise ValueError(
            f"'{name}' must have L={grid.n_labels} labels along dim 1 for this grid, got {probs.shape[1]}"
        )
    if not probs.is_floating_point():
        raise ValueError(f"'{name}' must be a floating-point tensor, got {probs.dtype}")


def label_metrics(
    probs: torch.Tensor,
    labels: torch.Tensor,
    displacement: torch.Tensor,
    valid: torch.Tensor,
    grid: LabelGrid,
) -> dict[str, float]:
    """Label accuracy, within-one-label accuracy and end-point error over the valid control points.

    .. math::

        \\text{acc} = \\frac{1}{|V|} \\sum_{c \\in V} [\\arg\\max_l p_{c,l} = y_c], \\qquad
        \\text{EPE} = \\frac{1}{|V|} \\sum_{c \\in V} \\Big\\| \\sum_l p_{c,l} d_l - u_c \\Big\\|_2

    Args:
        probs: label probabilities (or any scores for accuracy; EPE needs probabilities summing to
            one over ``L``), shape ``(N, L, Hc, Wc)``, float.
        labels: quantised true labels, shape ``(N, Hc, Wc)``, int64 in ``[0, L)``.
        displacement: true displacement ``(dx, dy)`` in pixels at the control points,
            shape ``(N, 2, Hc, Wc)``, float.
        valid: control points to score (foreground and inside the grid), shape ``(N, Hc, Wc)``, bool.
        grid: the label grid.

    Returns:
        ``{"accuracy", "within_one", "epe", "n_points"}``; accuracies in ``[0, 1]``, EPE in pixels.
        With no valid point the three metrics are ``nan`` and ``n_points`` is 0.
    """
    _check_probs(probs, grid)
    n, _, hc, wc = probs.shape
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (n, hc, wc):
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"label_metrics() 'labels' must have shape {(n, hc, wc)}, got {got}")
    if labels.dtype != torch.int64:
        raise ValueError(f"label_metrics() 'labels' must be int64, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= grid.n_labels):
        raise ValueError(f"label_metrics() 'labels' must lie in [0, {grid.n_labels})")
    if not isinstance(displacement, torch.Tensor) or tuple(displacement.shape) != (n, 2, hc, wc):
        got = tuple(displacement.shape) if isinstance(displacement, torch.Tensor) else type(displacement)
        raise ValueError(f"label_metrics() 'displacement' must have shape {(n, 2, hc, wc)}, got {got}")
    if not displacement.is_floating_point():
        raise ValueError(f"label_metrics() 'displacement' must be float, got {displacement.dtype}")
    if not isinstance(valid, torch.Tensor) or tuple(valid.shape) != (n, hc, wc):
        got = tuple(valid.shape) if isinstance(valid, torch.Tensor) else type(valid).__name__
        raise ValueError(f"label_metrics() 'valid' must have shape {(n, hc, wc)}, got {got}")
    if valid.dtype != torch.bool:
        raise ValueError(f"label_metrics() 'valid' must be a bool tensor, got {valid.dtype}")

    probs = probs.detach()
    labels = labels.to(probs.device)
    valid = valid.to(probs.device)
    count = int(valid.sum())
    if count == 0:
        nan = float("nan")
        return {"accuracy": nan, "within_one": nan, "epe": nan, "n_points": 0}

    pred = probs.argmax(dim=1)  # (N, Hc, Wc)
    offsets = grid.offsets(device=probs.device)  # (L, 2) integer (i, j)
    cheb = (offsets[pred] - offsets[labels]).abs().amax(dim=-1)  # (N, Hc, Wc)
    expected = grid.expected_displacement(probs)  # (N, 2, Hc, Wc)
    err = (expected - displacement.to(probs.device, probs.dtype)).norm(dim=1)  # (N, Hc, Wc)
    return {
        "accuracy": float((pred == labels)[valid].float().mean()),
        "within_one": float((cheb <= 1)[valid].float().mean()),
        "epe": float(err[valid].double().mean()),
        "n_points": count,
    }


def true_label_histogram(eval_pairs, grid: LabelGrid) -> dict[str, Any]:
    """How the true labels of a labelled pair set spread over the label grid (foreground points).

    Args:
        eval_pairs: an evaluation view (``batch()`` has ``"labels"``, ``"mask"``, ``"inside"``).
        grid: the label grid.

    Returns:
        ``{"shares": (2R+1) x (2R+1) nested list (rows along y, columns along x, like a label
        histogram) of the share of foreground points inside the grid per label, "ring_shares":
        [share at Chebyshev distance 0, 1, ..., R from the zero label], "identity_within_one":
        share of rings 0 and 1, "outside": share of foreground points outside the grid,
        "n_points": foreground points inside the grid}``.
    """
    b = eval_pairs.batch()
    if "labels" not in b:
        raise ValueError("true_label_histogram() 'eval_pairs' carries no labels (pass an evaluation view)")
    fg = b["mask"].bool()
    valid = fg & b["inside"].bool()
    labels = b["labels"][valid]
    n = int(labels.numel())
    counts = torch.bincount(labels, minlength=grid.n_labels).double()
    shares = counts / max(n, 1)
    ring = grid.offsets()[labels].abs().amax(dim=-1)
    ring_shares = torch.bincount(ring, minlength=grid.radius + 1).double() / max(n, 1)
    return {
        "shares": shares.reshape(grid.shape).tolist(),
        "ring_shares": ring_shares.tolist(),
        "identity_within_one": float(ring_shares[:2].sum()),
        "outside": float((fg & ~b["inside"].bool()).sum()) / max(int(fg.sum()), 1),
        "n_points": n,
    }


def dense_field(
    control_displacement: torch.Tensor, height: int, width: int, control_spacing: int
) -> torch.Tensor:
    """Interpolate control-point displacements to every pixel (bilinear, constant beyond the border).

    Control point ``(a, k)`` sits at pixel ``(x, y) = (s//2 + s k, s//2 + s a)`` with ``s`` the
    spacing (:func:`data_utils.grid.check_control_spacing`). The interpolation itself is
    :func:`data_utils.control_to_dense` (the project's one implementation of that geometry): at the
    control points the dense field equals the input exactly, it is bilinear in between, and pixels
    outside the outermost control points take the border value.

    Args:
        control_displacement: ``(N, 2, Hc, Wc)`` in pixels, ``(dx, dy)``.
        height: image height ``H`` (``Hc = H / s``).
        width: image width ``W`` (``Wc = W / s``).
        control_spacing: ``s``.

    Returns:
        ``(N, 2, H, W)`` dense displacement field in pixels; device and dtype follow the input.
    """

    hc, wc = check_control_spacing(height, width, control_spacing)
    if (
        not isinstance(control_displacement, torch.Tensor)
        or control_displacement.dim() != 4
        or tuple(control_displacement.shape[1:]) != (2, hc, wc)
    ):
        got = (
            tuple(control_displacement.shape)
            if isinstance(control_displacement, torch.Tensor)
            else type(control_displacement).__name__
        )
        raise ValueError(
            f"dense_field() 'control_displacement' must have shape (N, 2, {hc}, {wc}), got {got}"
        )
    return control_to_dense(control_displacement, control_spacing, (height, width))


def masked_ncc(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalised cross-correlation of two image batches over a mask, one value per image.

    .. math::

        \\text{NCC} = \\frac{\\sum_{x \\in M} (a - \\bar a)(b - \\bar b)}
        {\\sqrt{\\sum_{x \\in M} (a - \\bar a)^2 \\sum_{x \\in M} (b - \\bar b)^2} + \\epsilon}

    Args:
        a: ``(N, 1, H, W)`` or ``(N, H, W)``.
        b: same shape as ``a``.
        mask: ``(N, H, W)`` (or ``(N, 1, H, W)``) bool; means are taken over the mask.
        eps: guards constant images.

    Returns:
        ``(N,)`` NCC values in ``[-1, 1]``.
    """
    if a.shape != b.shape:
        raise ValueError(
            f"masked_ncc() 'b' must have the shape of 'a' {tuple(a.shape)}, got {tuple(b.shape)}"
        )
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    m = mask.reshape(mask.shape[0], -1).to(a.dtype)
    if m.shape != a.shape:
        raise ValueError(f"masked_ncc() 'mask' must have {a.shape[1]} pixels per image, got {m.shape[1]}")
    cnt = m.sum(dim=1).clamp_min(1.0)
    da = (a - (a * m).sum(1, keepdim=True) / cnt[:, None]) * m
    db = (b - (b * m).sum(1, keepdim=True) / cnt[:, None]) * m
    return (da * db).sum(1) / ((da.square().sum(1) * db.square().sum(1)).sqrt() + eps)


def identity_probs(
    n: int, grid: LabelGrid, hc: int, wc: int, dtype=torch.float32, device=None
) -> torch.Tensor:
    """One-hot probabilities of the zero-displacement label: the "no registration" reference.

    Returns:
        ``(N, L, Hc, Wc)`` with all mass on label ``grid.index(0, 0)``.
    """
    p = torch.zeros(n, grid.n_labels, hc, wc, dtype=dtype, device=device)
    p[:, grid.index(0, 0)] = 1.0
    return p


def dense_mask(batch: dict[str, torch.Tensor], spacing: int) -> torch.Tensor:
    """The control-point foreground ``batch["mask"]`` ``(N, Hc, Wc)`` upsampled to the pixels it
    stands for: ``(N, Hc * spacing, Wc * spacing)`` bool (NCC after warping, label-free scores)."""
    m = batch["mask"]
    return m.repeat_interleave(spacing, dim=-2).repeat_interleave(spacing, dim=-1).bool()


def evaluate_probs(probs: torch.Tensor, eval_pairs, cfg) -> dict[str, Any]:
    """All metrics of label probabilities on an evaluation view of test pairs.

    Args:
        probs: ``(N, L, Hc, Wc)`` probabilities for ``eval_pairs`` in order (e.g. the mean of F1's
            and F2's softmax, or the MIND baseline).
        eval_pairs: a :class:`data_utils` evaluation view (its ``batch()`` returns ``"fixed"``,
            ``"moving"`` ``(N, 1, H, W)``, ``"mask"``, ``"labels"``, ``"inside"``, ``"displacement"``).
            Pairs without labels (users' own images) get image similarity only.
        cfg: the :class:`~pemd_tutorial.config.Config` (its ``grid`` and ``control_spacing``).

    Returns:
        ``{"accuracy", "within_one", "epe", "n_points", "ncc", "ncc_reference"}``. ``ncc`` compares
        the moving image warped by the prediction with ``ncc_reference``'s target (see the module
        docstring); label metrics are absent when the pairs carry no labels.
    """

    grid = cfg.grid
    _check_probs(probs, grid)
    batch = eval_pairs.batch()
    moving = batch["moving"].to(probs.dtype)
    fixed = batch["fixed"].to(probs.dtype)
    n, _, h, w = moving.shape
    s = int(cfg.control_spacing)
    if probs.shape[0] != n or tuple(probs.shape[-2:]) != check_control_spacing(h, w, s):
        raise ValueError(
            f"evaluate_probs() 'probs' has shape {tuple(probs.shape)}, which does not match "
            f"{n} pairs of {h}x{w} pixels with control spacing {s}"
        )
    probs = probs.detach().cpu()
    out: dict[str, Any] = {}
    if "labels" in batch:
        valid = batch["mask"].bool() & batch["inside"].bool()
        out.update(label_metrics(probs, batch["labels"], batch["displacement"].to(probs.dtype), valid, grid))

    pred_field = dense_field(grid.expected_displacement(probs), h, w, s)
    warped = warp(moving, pred_field)
    fg = dense_mask(batch, s)
    if "field" in batch:  # evaluation views carry the true dense field of their synthetic deformation
        target, ref = warp(moving, batch["field"].to(probs.dtype)), "true dense field"
    else:  # no truth at all: compare with the fixed image itself
        target, ref = fixed, "fixed image"
    out["ncc"] = float(masked_ncc(warped, target, fg).mean())
    out["ncc_reference"] = ref
    return out


def evaluate_model(model: torch.nn.Module, eval_pairs, cfg, *, batch_size: int = 64) -> dict[str, Any]:
    """Evaluate a trained :class:`~pemd_tutorial.model.RegistrationNet`: F1 and F2 probabilities averaged.

    Args:
        model: the network (any device; :func:`predict` returns CPU tensors).
        eval_pairs: evaluation view of the test pairs (see :func:`evaluate_probs`).
        cfg: the configuration.
        batch_size: prediction batch size.

    Returns:
        The dict of :func:`evaluate_probs` for ``(p1 + p2) / 2``.
    """
    return evaluate_probs(predict(model, eval_pairs, batch_size=batch_size, combine="mean"), eval_pairs, cfg)


def per_slice_counts(probs: torch.Tensor, eval_pairs) -> dict[str, list[int]]:
    """Correct and scored control points per test slice (the units of
    :func:`pemd_tutorial.stats.paired_bootstrap`).

    Args:
        probs: ``(N, L, Hc, Wc)`` probabilities for ``eval_pairs`` in order.
        eval_pairs: an evaluation view whose ``batch()`` has ``"labels"``, ``"mask"``, ``"inside"``
            and ``"slice_index"``.

    Returns:
        ``{"slice_index", "correct", "total"}``: sorted slice positions and, per slice, the arg-max
        labels equal to the true label and the scored points (``mask & inside``) over its pairs.
    """
    b = eval_pairs.batch()
    valid = b["mask"] & b["inside"]
    if probs.shape[0] != valid.shape[0]:
        raise ValueError(f"per_slice_counts() 'probs' has {probs.shape[0]} pairs, 'eval_pairs' "
                         f"{valid.shape[0]}")
    hit = (probs.argmax(dim=1).cpu() == b["labels"]) & valid
    out: dict[str, list[int]] = {"slice_index": [], "correct": [], "total": []}
    for s in sorted(set(b["slice_index"].tolist())):
        rows = b["slice_index"] == s
        total = int(valid[rows].sum())
        if total == 0:
            continue
        out["slice_index"].append(int(s))
        out["correct"].append(int(hit[rows].sum()))
        out["total"].append(total)
    return out


def mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (``n - 1``) of the finite values (``None``/NaN skipped).

    One value gives a standard deviation of 0; none gives ``(nan, nan)``.
    """
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return float("nan"), float("nan")
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def label_accuracy(probs: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> float:
    """Share of valid control points whose argmax label is the true label.

    Args:
        probs: ``(B, L, Hc, Wc)`` probabilities or logits.
        labels: ``(B, Hc, Wc)`` int64.
        valid: ``(B, Hc, Wc)`` bool (e.g. ``mask & inside``).
    """
    hit = (probs.argmax(dim=1) == labels) & valid
    return float(hit.sum()) / max(int(valid.sum()), 1)


def fetch_batch(pairs, indices: Sequence[int], keys: Sequence[str], device) -> dict[str, torch.Tensor]:
    """Stacked tensors of ``keys`` for ``indices``, via ``pairs.batch`` or ``pairs[i]``, on ``device``."""
    indices = [int(i) for i in indices]
    if hasattr(pairs, "batch"):
        b = pairs.batch(indices=indices)
        out = {k: b[k] for k in keys}
    else:
        items = [pairs[i] for i in indices]
        out = {k: torch.stack([it[k] for it in items]) for k in keys}
    return {k: v.to(device) for k, v in out.items()}


def heads_mean(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """The package's prediction of a two-headed network: the mean of F1's and F2's probabilities.

    The one place this mean is written (training, evaluation, label-free scores and ``register``
    call it), so that a change of how the heads are combined is one edit. ``p1`` and ``p2`` are
    probabilities of the same shape, e.g. ``(N, L, Hc, Wc)``.
    """
    if p1.shape != p2.shape:
        raise ValueError(f"heads_mean() 'p1' and 'p2' must have one shape, got {tuple(p1.shape)} and "
                         f"{tuple(p2.shape)}")
    return 0.5 * (p1 + p2)


#: How :func:`predict` combines the heads: ``None`` returns both, ``"mean"`` :func:`heads_mean`.
COMBINE = (None, "mean")


@torch.no_grad()
def predict(model: torch.nn.Module, pairs, *, batch_size: int = 64, combine: str | None = None):
    """Softmax probabilities of a two-headed network for every pair, ``(N, L, Hc, Wc)`` on the CPU.

    Args:
        model: a two-headed network (:class:`pemd_tutorial.model.TwoHeadedNet`: ``model(fixed,
            moving)`` returns the logits of F1 and F2); its device is used and its train/eval mode
            is restored afterwards.
        pairs: any pair dataset or evaluation view; only ``"fixed"`` and ``"moving"`` are read.
        batch_size: pairs per forward pass.
        combine: ``None`` (default): the tuple ``(p1, p2)`` of F1's and F2's probabilities;
            ``"mean"``: the package's prediction, :func:`heads_mean` of the two.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"predict() 'batch_size' must be an integer >= 1, got {batch_size!r}")
    if combine not in COMBINE:
        raise ValueError(f"predict() 'combine' must be None or 'mean', got {combine!r}")
    n = len(pairs)
    if n < 1:
        raise ValueError("predict() 'pairs' is empty")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        p1, p2 = [], []
        for start in range(0, n, batch_size):
            b = fetch_batch(pairs, range(start, min(n, start + batch_size)), ("fixed", "moving"), device)
            l1, l2 = model(b["fixed"], b["moving"])
            p1.append(torch.softmax(l1, dim=1).cpu())
            p2.append(torch.softmax(l2, dim=1).cpu())
    finally:
        model.train(was_training)
    both = torch.cat(p1), torch.cat(p2)
    return both if combine is None else heads_mean(*both)


def pairs_accuracy(probs_or_model, pairs, *, batch_size: int = 64) -> float:
    """Label accuracy on labelled pairs: the one accuracy of a prediction used by training logs,
    the label-free choice's collapse check, the patch experiment and the benchmarks.

    Args:
        probs_or_model: ``(N, L, Hc, Wc)`` probabilities of ``pairs`` in order, or a two-headed
            network (then :func:`predict` with ``combine="mean"``).
        pairs: an evaluation view (or patch pairs) whose ``batch()`` has ``"labels"``, ``"mask"``
            and ``"inside"``: the points scored are ``mask & inside``.
        batch_size: of the prediction, when a network is given.
    """
    if isinstance(probs_or_model, torch.nn.Module):
        probs = predict(probs_or_model, pairs, batch_size=batch_size, combine="mean")
    else:
        probs = probs_or_model
    b = pairs.batch()
    if probs.shape[0] != b["labels"].shape[0] or probs.shape[2:] != b["labels"].shape[1:]:
        raise ValueError(f"pairs_accuracy() 'probs' of shape {tuple(probs.shape)} do not fit the "
                         f"{tuple(b['labels'].shape)} labels of 'pairs'")
    return label_accuracy(probs, b["labels"], b["mask"] & b["inside"])


def example_registrations(
    batch: Mapping[str, torch.Tensor],
    probs: Mapping[str, torch.Tensor],
    grid: LabelGrid,
    control_spacing: int,
    n: int,
) -> list[tuple[str, torch.Tensor, torch.Tensor | None]]:
    """The columns of an example figure: ``(title, images (n, 1, H, W), control displacements or None)``.

    ``"fixed"``, ``"moving"``, ``"truth"`` (the moving image warped by the true field, with the true
    control-point displacements), then one column per method of ``probs`` (key as title): the moving
    image warped by the expected displacement of its probabilities, interpolated as in evaluation.
    """
    fixed, moving = batch["fixed"][:n].float(), batch["moving"][:n].float()
    h, w = fixed.shape[-2:]
    true_cp = batch["displacement"][:n].float()
    if "field" in batch:
        true_dense = batch["field"][:n].float()
    else:
        true_dense = dense_field(true_cp, h, w, control_spacing)
    columns: list[tuple[str, torch.Tensor, torch.Tensor | None]] = [
        ("fixed", fixed, None),
        ("moving", moving, None),
        ("truth", warp(moving, true_dense), true_cp),
    ]
    for method, p in probs.items():
        cp = grid.expected_displacement(p[:n].float())
        columns.append((method, warp(moving, dense_field(cp, h, w, control_spacing)), cp))
    return columns
