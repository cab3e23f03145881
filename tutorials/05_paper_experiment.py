# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5 · The paper's own experiment: 25 displacement classes on patches
#
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/pemd-tutorial/pemd-tutorial/main?labpath=tutorials%2F05_paper_experiment.ipynb) [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pemd-tutorial/pemd-tutorial/blob/main/tutorials/05_paper_experiment.ipynb)
#
# Notebooks 03 and 04 use a dense network with 81 labels per control point and a correlation
# layer: our extension. The authors' talk slides describe the simpler experiment behind the
# paper's numbers: a **fixed patch** and a **moving patch** displaced by one of **25 classes**
# on a 5×5 grid, a feature extractor shared by both patches whose features are **concatenated**
# and classified by two classifiers, adapted from T1w to T2w by maximum classifier discrepancy
# with a projected EMD over 16 angles plus SWD. This notebook rebuilds it on the embedded data
# (`pemd_tutorial.paper`), trains it for one seed on the CPU (about 3 minutes) and puts it next to
# the slides' bar chart. `python -m pemd_tutorial --experiment paper` runs every row over three
# seeds.

# %%
# Colab only: install this repository (Colab's own CUDA torch is kept). Does nothing elsewhere.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/pemd-tutorial/pemd-tutorial"], check=True)

# %%
# Configuration: every size below derives from these lines.
import os

import matplotlib.pyplot as plt
import torch

QUICK = bool(os.environ.get("CI") or os.environ.get("PEMD_QUICK"))  # smaller runs for CI
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SEED = 0
torch.manual_seed(SEED)
# %matplotlib inline
# %config InlineBackend.figure_format = "png"
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100})

import copy

import numpy as np
from ipywidgets import IntSlider, interact

from data_utils.patches import make_patch_pairs
from pemd_tutorial.figures import PAPER_ACCURACY, plot_histogram
from pemd_tutorial.paper import (
    PAPER_METHODS,
    ConcatNet,
    PaperConfig,
    adapt_patches,
    angles_between,
    train_supervised,
)

torch.set_flush_denormal(True)  # tiny gradients in float32 slow the CPU down otherwise
cfg = PaperConfig.quick() if QUICK else PaperConfig.standard()
GRID = cfg.grid
pair_kw = {"patch": cfg.patch, "step": cfg.step, "deform": cfg.deform}
print(f"QUICK={QUICK}, DEVICE={DEVICE}; {cfg.patch} px patches, {GRID.n_labels} classes, step {cfg.step} px")

# %% [markdown]
# ## 1. The patch set-up
#
# A fixed patch is cut from a (mildly deformed) T1w slice around a point in the brain; the moving
# patch is cut from the T2w slice around the same point displaced by one of the 25 labels
# `{−2s, −s, 0, s, 2s}²` (here `s = 4` px). Each class occurs equally often, so answering "no
# displacement" every time scores exactly 1/25 = 4 %, the slides' "no registration". Below: a
# fixed patch and the 25 candidate moving patches, the true one framed.

# %%
source_train = make_patch_pairs("train", "t1", cfg.n_train, seed=1, **pair_kw)
target_train = make_patch_pairs("train", "t2", cfg.n_train, seed=2, **pair_kw)  # labels never used
target_val = make_patch_pairs("val", "t2", cfg.n_val, seed=5, **pair_kw)
target_test = make_patch_pairs("test", "t2", cfg.n_test, seed=3, **pair_kw)
k = 0
cands = target_test.candidates(k)
fig = plt.figure(figsize=(9.0, 3.6))
ax = fig.add_subplot(1, 3, 1)
ax.imshow(target_test.fixed[k, 0], cmap="gray", vmin=0, vmax=1)
ax.set_title("fixed patch (T1w)", fontsize=9)
ax.axis("off")
for idx in range(GRID.n_labels):
    i, j = idx % 5, idx // 5
    ax = fig.add_axes([0.38 + 0.115 * i, 0.78 - 0.18 * j, 0.105, 0.165])
    ax.imshow(cands[idx], cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if idx == int(target_test.labels[k]):
        for side in ax.spines.values():
            side.set_color("red")
            side.set_linewidth(3)
fig.text(0.62, 0.96, "25 candidate moving patches (T2w); red: the true label", ha="center", fontsize=9)

# %%
counts = target_test.labels.bincount(minlength=GRID.n_labels)
print(f"{len(target_test)} test pairs, each class {int(counts.min())} to {int(counts.max())} times")
print(f"'no registration' (always label 0,0): {100 * float((target_test.labels == GRID.index(0, 0)).float().mean()):.1f} %")
assert int(counts.min()) == int(counts.max())  # balanced: chance is exactly 1/25
assert torch.equal(cands[target_test.labels[k]], target_test.moving[k, 0])

# %% [markdown]
# ## 2. The network and training
#
# Four blocks of Conv2d + InstanceNorm + PReLU extract features of each patch (shared weights; one
# block has stride 2, so 36 px patches give 18×18 maps with 16 channels); the two maps are
# concatenated and two differently initialised classifiers of three blocks each output 25 logits,
# scaled by 0.1 before the softmax (the slides' first trick). We train on labelled T1w→T1w pairs,
# then adapt copies of that network with MCD (steps A, B, C of notebook 03) using SWD and using
# the projected EMD over 16 angles in [0°, 90°] plus SWD, each with its weight λ (`cfg.lambda_for`;
# in the standard profile the value chosen on the T2w validation pairs), and measure the target accuracy on the
# validation pairs along the way.

# %%
net = ConcatNet(cfg, seed=SEED)
counts = net.weight_counts()
print(f"extractor {counts['extractor']} weights, each classifier {counts['classifier']} weights")
assert 10_000 <= counts["extractor"] <= 16_000 and 60_000 <= counts["classifier"] <= 80_000  # slides: 13k, 70k


def accuracy(model, pairs):
    model.eval()
    with torch.no_grad():
        p1, p2 = (logits.softmax(1) for logits in model(pairs.fixed, pairs.moving))
    model.train()
    return float(((p1 + p2).argmax(1) == pairs.labels).float().mean()), p1, p2


train_supervised(net, source_train, cfg.source_steps, cfg, SEED)
nets = {"no adaptation": net}
curves = {}
for row in ("mcd_swd", "mcd_pemd16_swd"):
    name, disc, n_angles = PAPER_METHODS[row]
    nets[name] = copy.deepcopy(net)
    angles = angles_between(n_angles) if n_angles else (0.0,)
    curves[name] = adapt_patches(nets[name], source_train, target_train, cfg, disc, angles,
                                 cfg.lambda_for(row, "t2"), SEED, val=target_val,
                                 every=max(cfg.adapt_steps // 6, 1))
scores = {name: accuracy(model, target_test) for name, model in nets.items()}
for name, (acc, _, _) in scores.items():
    print(f"{name:22s} target test accuracy {100 * acc:5.1f} %")

# %%
fig, ax = plt.subplots(figsize=(5.0, 3.0))
start = accuracy(net, target_val)[0]
for name, curve in curves.items():
    ax.plot([0] + [s for s, _ in curve], [100 * start] + [100 * a for _, a in curve], marker="o", label=name)
ax.axhline(100 / GRID.n_labels, color="k", ls=":", lw=1, label="chance (4 %)")
ax.set_xlabel("MCD iteration")
ax.set_ylabel("target val accuracy (%)")
ax.legend(fontsize=8)
fig.tight_layout()
assert all(0.0 <= a <= 1.0 for curve in curves.values() for _, a in curve)

# %% [markdown]
# ## 3. The two classifiers on one test patch
#
# For a test patch (slider), the 5×5 histograms of classifier 1 and classifier 2 before adaptation
# and after MCD-pEMD (16) + SWD; the cross marks the true displacement. The static figure below
# the slider shows test patch 0.

# %%
def show_heads(index=0):
    fig, axes = plt.subplots(1, 4, figsize=(12.0, 2.9))
    truth = GRID.displacements()[target_test.labels[index]].tolist()
    panels = []
    for name, short in (("no adaptation", "before"), ("MCD-pEMD (16) + SWD", "after MCD-pEMD+SWD")):
        _, p1, p2 = scores[name]
        panels += [(f"F1, {short}", p1[index]), (f"F2, {short}", p2[index])]
    vmax = max(float(p.max()) for _, p in panels)
    for ax, (title, p) in zip(axes, panels, strict=True):
        im = plot_histogram(ax, p, GRID, title=title, vmax=vmax, mark=truth)
    fig.colorbar(im, ax=axes, shrink=0.8)
    plt.show()


interact(show_heads, index=IntSlider(value=0, min=0, max=len(target_test) - 1, description="test patch",
                                     continuous_update=False));

# %%
show_heads(0)  # the slider's start as a static figure (GitHub, nbviewer)

# %%
_, p1, p2 = scores["MCD-pEMD (16) + SWD"]
assert torch.allclose(p1.sum(1), torch.ones(len(target_test))) and torch.allclose(p2.sum(1), torch.ones(len(target_test)))

# %% [markdown]
# ## 4. Beside the slides
#
# The slides' bars (canine T1w→T2w MRI, their patch sizes) and ours (MNI T1w → simulated T2w, one
# seed here; `python -m pemd_tutorial --experiment paper` runs three seeds and more rows,
# see `docs/paper.md`).

# %%
ours = {"no registration": 100 / GRID.n_labels, "no adaptation": 100 * scores["no adaptation"][0],
        "MCD-SWD": 100 * scores["MCD-SWD"][0], "MCD-pEMD (16) + SWD": 100 * scores["MCD-pEMD (16) + SWD"][0]}
fig, ax = plt.subplots(figsize=(6.0, 3.0))
xs = np.arange(len(PAPER_ACCURACY))
ax.bar(xs - 0.2, list(PAPER_ACCURACY.values()), 0.4, color="0.6", label="slides: canine T1w → T2w")
ax.bar(xs + 0.2, [ours[k] for k in PAPER_ACCURACY], 0.4, color="C3", label="ours: MNI T1w → simulated T2w, seed 0")
ax.set_xticks(xs, list(PAPER_ACCURACY), fontsize=8)
ax.set_ylabel("target label accuracy (%)")
ax.legend(fontsize=7, loc="upper left")
fig.tight_layout()

# %%
# NBVAL_CHECK_OUTPUT
print("slides:", {k: v for k, v in PAPER_ACCURACY.items()})
assert abs(ours["no registration"] - PAPER_ACCURACY["no registration"]) < 0.1  # chance, by construction
assert all(0.0 <= v <= 100.0 for v in ours.values())

# %% [markdown]
# **Summary.** The slides' experiment, rebuilt: 25 classes on patches, a concatenation network,
# MCD with SWD or with the projected EMD (16 angles) plus SWD. On our simulated T2w the domain gap
# is total (no adaptation is near chance, where the slides' canine data started at 31.9 %), and
# adaptation recovers only a few points. On a milder simulated target (intermediate-weighted,
# `make_patch_pairs(..., "inter")`) the source-only network starts near the slides' 31.9 %, but
# there no adaptation variant improves on it. `docs/paper.md` gives the three-seed numbers of
# both, what we tried and what moved them. The dense network of notebook 03 adapts far better on
# the same T2w data.
