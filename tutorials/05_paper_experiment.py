# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
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
# with a projected EMD over 16 angles plus SWD. Here the 16 angles are evenly spaced from 0° to
# 90°, both ends included (the 2-angle row: 0° and 90°), and "plus SWD" is the sum of the two
# discrepancies, each scaled as in notebook 03 and weighted 1 (`scaled_discrepancy("pemd+swd",
# ...)`). Notebook 03 found SWD hundreds of times smaller than the projected EMD on the dense
# network's predictions, so the SWD term may add little; the row with the projected EMD (16)
# alone, in section 2, separates it, inconclusively over three seeds. This notebook
# rebuilds it on the embedded data
# (`pemd_tutorial.paper`). Sections 1-4 use networks that ship with the package (seed 0) and run
# in seconds; section 5 trains two networks yourself (source-only, then MCD-pEMD (16) + SWD), with
# the same code. The command `python -m pemd_tutorial paper` runs every row over three seeds
# ([docs/paper.md](../docs/paper.md)).

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

QUICK = bool(os.environ.get("CI") or os.environ.get("PEMD_QUICK"))  # PEMD_QUICK=1: a fast run-through
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SEED = 0
torch.manual_seed(SEED)
# %matplotlib inline
# %config InlineBackend.figure_format = "png"
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100})

import copy
import time

import numpy as np
from ipywidgets import IntSlider, interact

from data_utils import invert_foreground
from pemd_tutorial.config import PAPER_ACCURACY, PAPER_METHODS, PAPER_REFERENCE_NAMES, PaperConfig
from pemd_tutorial.evaluate import predict
from pemd_tutorial.figures import benchmark_result, plot_histogram, plot_paper_experiment
from pemd_tutorial.model import ConcatNet
from pemd_tutorial.paper import (
    angles_between,
    evaluation_set,
    mind_patch_baseline,
    patch_accuracy,
    training_pairs,
)
from pemd_tutorial.pretrained import load_pretrained, pretrained_manifest
from pemd_tutorial.training import adapt, train_source

manifest = pretrained_manifest("paper")
cfg = PaperConfig.from_dict({**manifest["config"], "device": DEVICE})  # the standard profile, seed 0
GRID = cfg.grid
print(f"{cfg.patch} px patches, {GRID.n_labels} classes, step s = {cfg.step} px, on {DEVICE}")

# %% [markdown]
# ## 1. The patch set-up
#
# A fixed patch is cut from a (mildly deformed) T1w slice around a point in the brain; the moving
# patch is cut from the T2w slice around the same point displaced by one of the 25 labels
# `{−2s, −s, 0, s, 2s}²`. The slides use `s = 19` px (displacements up to ±38 px) on canine
# images and do not state their patch size; here `s = 4` px on 36 px patches (printed above) cut
# from the embedded slices, whose pixels are 1.44 mm (notebook 04, section 1, prints them as
# 1.438 mm), so the largest displacement, 8 px, stays well inside the patch. Each class occurs
# equally often, so answering "no displacement" every time scores exactly 1/25 = 4 %, the slides'
# "no registration". Below: a
# fixed test patch and the 25 candidate moving patches (before the moving patch's own intensity
# changes), the true one framed.

# %%
target_test = evaluation_set(cfg, "test", "t2")  # fixed pairs of 8 slices used for nothing else
source_test = evaluation_set(cfg, "test", "t1")
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
    dx, dy = GRID.displacements()[idx].tolist()  # the candidate's displacement in px
    if j == 4:
        ax.set_xlabel(f"dx {dx:+.0f}", fontsize=7, labelpad=1)
    if i == 0:
        ax.set_ylabel(f"dy {dy:+.0f}", fontsize=7, labelpad=1)
    if idx == int(target_test.labels[k]):
        for side in ax.spines.values():
            side.set_color("red")
            side.set_linewidth(3)
fig.text(0.62, 0.96, "25 candidate moving patches (T2w), displaced by dx, dy (px); red: the true label", ha="center",
         fontsize=9);

# %%
counts = target_test.labels.bincount(minlength=GRID.n_labels)
print(f"{len(target_test)} test pairs, each class {int(counts.min())} to {int(counts.max())} times")
print(f"'no registration' (always label 0,0): {100 * float((target_test.labels == GRID.index(0, 0)).float().mean()):.1f} %")
assert int(counts.min()) == int(counts.max())  # balanced: chance is exactly 1/25

# %% [markdown]
# **Fresh pairs for every training step.** Training does not reuse a fixed set of pairs: a
# `PatchSampler` draws new ones (new slice, centre, label, mild deformation and intensity changes)
# for every step, from a seeded generator, so a run is reproducible. With a fixed pool of 2,000
# pairs this network learns them by heart (100 % on its training batches) and finds only 12 % of
# the displacements of other T1w slices; with fresh pairs it finds 93 % after 1,500 steps (these
# three numbers are quoted from the learning curves in [docs/paper.md](../docs/paper.md), not
# measured in this notebook).

# %%
sampler = training_pairs(cfg, "t1", labelled=True)
g = torch.Generator().manual_seed(SEED)
first, second = sampler.draw_batch(cfg.batch_size, g), sampler.draw_batch(cfg.batch_size, g)
print(f"{sampler}: a batch of {tuple(first['fixed'].shape)} patches; labels of two batches:")
print(first["labels"].view(-1)[:12].tolist(), second["labels"].view(-1)[:12].tolist())
assert not torch.equal(first["fixed"], second["fixed"])  # new pairs every step

# %% [markdown]
# ## 2. The network and the shipped results
#
# Four blocks of Conv2d + InstanceNorm + PReLU extract features of each patch (shared weights; one
# block has stride 2, so 36 px patches give 18×18 maps with 16 channels); the two maps are
# concatenated and two differently initialised classifiers of three blocks each output 25 logits.
# Two tricks on the slides are left out: the logits are not scaled by 0.1 before the softmax
# (it learnt more slowly here), and both classifiers, not classifier 1 alone, get the supervised
# update in step A (with classifier 1 alone the source accuracy collapsed in a run that was not
# kept, an observation without numbers; [docs/paper.md](../docs/paper.md) measures the first
# trick). The network is trained on labelled T1w→T1w pairs (**no adaptation**), then copies of it are
# adapted with MCD (steps A, B, C of notebook 03) on *unlabelled* T2w pairs, with each
# discrepancy and its weight λ, chosen **without T2w labels** (the λ whose network picks shifts
# that make the two patches look most alike, by MIND-SSD, on unlabelled T2w validation patches;
# on patches this score is nearly as informative as labels, since MIND alone solves 98.6 % of
# them: [docs/selection.md](../docs/selection.md)); the **oracle** is trained on labelled T2w pairs,
# which no unsupervised method has. The trivial trick is a row too: the source-only network on
# the moving T2w patch **inverted** on its foreground (`max − x`). **MIND** compares hand-crafted
# descriptors of both patches at every candidate shift and needs no training.

# %%
nets = {row: load_pretrained(f"paper/{row}", device=DEVICE) for row in PAPER_METHODS}
counts = nets["source"].weight_counts()
print(f"extractor {counts['extractor']} weights, each classifier {counts['classifier']} weights")
assert 10_000 <= counts["extractor"] <= 16_000 and 60_000 <= counts["classifier"] <= 80_000  # slides: 13k, 70k

acc = {"identity": float((target_test.labels == GRID.index(0, 0)).float().mean()),
       "mind": float((mind_patch_baseline(target_test) == target_test.labels).float().mean())}
acc["inverted"] = patch_accuracy(nets["source"], target_test.with_moving(invert_foreground))  # the trivial trick
acc.update({row: patch_accuracy(net, target_test) for row, net in nets.items()})
source_acc = {row: patch_accuracy(net, source_test) for row, net in nets.items()}
names = {**PAPER_REFERENCE_NAMES, **{row: label for row, (label, _, _) in PAPER_METHODS.items()}}
# the three seeds of `python -m pemd_tutorial paper` (benchmarks/results/paper_standard.json)
three = benchmark_result("paper_standard")
t2 = three["columns"]["t2"]


def mean_std(values):
    return f"{100 * np.mean(values):5.1f} ± {100 * np.std(values, ddof=1):4.1f}"


print(f"{'':30s} {'seed 0 (shipped)':^19s} {'seeds 0, 1, 2: mean ± std':^29s}")
print(f"{'method':30s} {'T2w test':>9s} {'T1w test':>9s} {'T2w test':>14s} {'T1w test':>14s}")
for row, a in acc.items():
    src = f"{100 * source_acc[row]:8.1f}%" if row in source_acc else ""
    src3 = mean_std(t2["source_accuracy"][row]) + " %" if row in t2["source_accuracy"] else ""
    print(f"{names[row]:30s} {100 * a:8.1f}% {src:>9s} {mean_std(t2['per_seed'][row])} % {src3:>14s}")
for row in PAPER_METHODS:  # the same numbers as when the networks were built, and as seed 0 of the three
    assert abs(acc[row] - manifest["networks"][row]["metrics"]["accuracy"]) < 0.005
    assert abs(acc[row] - t2["per_seed"][row][0]) < 0.005

# %% [markdown]
# Seed 0 beside the mean ± sample standard deviation over seeds 0, 1 and 2 (`python -m
# pemd_tutorial paper`, the table of [docs/paper.md](../docs/paper.md)). The source-only network
# finds most displacements on T1w patches and few on T2w ones; adaptation with SWD barely moves
# it; with the projected EMD (16 angles) plus SWD it rises from 7.6 % to 49.2 % on seed 0, but
# seed 0 is the best of the three seeds: their mean is 31.9 ± 15.3 % against 5.9 ± 1.7 % without
# adaptation, and the source (T1w) accuracy drops from 93.5 ± 0.9 to 84.5 ± 4.6 %. The adapted
# rows vary so much between seeds that one seed is not a result. **Inverting the moving patch beats every adapted network by far**, with no
# training: our simulated T2w is nearly an inverted T1w, so this experiment tests the mechanism of
# MCD, not a way to register real T2w patches. The oracle (68.0 %) shows what training this
# network on T2w labels gives with this recipe; the inverted input (87.6 %) and MIND (98.6 %),
# which needs no training at all, are both above it. Trained on T2w only, the oracle finds 10.6 %
# of the T1w displacements: it learned the reversed contrast, the mirror of the source-only
# network. Between the rows, the projected EMD variants are ordered by the number of angles and
# the added SWD on seed 0, 2 angles (26.8 %) < 16 angles (42.4 %) < 16 angles + SWD (49.2 %), and
# in the three-seed means (19.7 < 24.8 < 31.9 %), each with a spread of 7 to 16 points, so three
# seeds cannot confirm the order (the slides give a bar for the last of the three only; the other
# two appear in their training curves, not shown here). L1 (8.5 ± 5.3 %) is not clearly above no
# adaptation (5.9 ± 1.7 %) over three seeds, and neither is SWD (5.4 ± 1.7 %). So on these
# patches L1 barely adapts while every projected EMD variant does, unlike the dense task of
# notebook 03, where L1 adapts too. With three seeds and spreads of 5 to 16 points it is a hint,
# not a measurement, and a hint that something in the projected EMD helps (its form or its
# scale), not necessarily its geometry: this experiment has no shuffled-grid row, and on the dense task (notebook 03,
# section 6) the projected EMD on a shuffled grid adapted as well as on the true one. What
# differs between the two tasks (25 labels or 81, one patch or many control points, the network)
# was not separated.

# %%
assert acc["mcd_pemd16_swd"] > acc["mcd_swd"] + 0.08 and acc["mcd_pemd16_swd"] > acc["source"] + 0.08
assert acc["inverted"] > acc["mcd_pemd16_swd"] + 0.2  # the trivial trick wins
assert acc["source"] < acc["oracle"] < acc["mind"]

# %% [markdown]
# ## 3. The two classifiers on one test patch
#
# For a test patch (slider), the 5×5 histograms of classifier 1 and classifier 2 before adaptation
# and after MCD-pEMD (16) + SWD; the cross marks the true displacement. The adapted network is
# right on about half the test patches, so many patches still look wrong; the static figure below
# the slider shows the first test patch that adaptation gets right and no adaptation gets wrong.

# %%
heads = {row: predict(nets[row], target_test) for row in ("source", "mcd_pemd16_swd")}


def show_heads(index=0):
    fig, axes = plt.subplots(1, 4, figsize=(12.5, 3.3), layout="constrained")
    truth = GRID.displacements()[target_test.labels[index]].tolist()
    panels = []
    for row, short in (("source", "no adaptation"), ("mcd_pemd16_swd", "MCD-pEMD (16) + SWD")):
        p1, p2 = heads[row]
        panels += [(f"classifier 1\n{short}", p1[index].view(-1)), (f"classifier 2\n{short}", p2[index].view(-1))]
    vmax = max(float(p.max()) for _, p in panels)
    for ax, (title, p) in zip(axes, panels, strict=True):
        im = plot_histogram(ax, p, GRID, title=title, vmax=vmax, mark=truth)
    fig.colorbar(im, ax=axes, shrink=0.8, label="probability")
    plt.show()


interact(show_heads, index=IntSlider(value=0, min=0, max=len(target_test) - 1, description="test patch",
                                     continuous_update=False));

# %%
predicted = {row: (0.5 * (h[0] + h[1])).view(len(target_test), -1).argmax(1) for row, h in heads.items()}
helped = (predicted["mcd_pemd16_swd"] == target_test.labels.view(-1)) & (predicted["source"] != target_test.labels.view(-1))
example = int(torch.nonzero(helped)[0])
print(f"test patch {example}: adaptation right, no adaptation wrong ({int(helped.sum())} such patches of {len(target_test)})")
show_heads(example)  # a static figure for GitHub and nbviewer

# %%
p1, p2 = heads["mcd_pemd16_swd"]
assert torch.allclose(p1.sum(1), torch.ones_like(p1.sum(1))) and torch.allclose(p2.sum(1), torch.ones_like(p2.sum(1)))

# %% [markdown]
# ## 4. Beside the slides
#
# The slides' bars (canine T1w→T2w MRI, their patch sizes) and ours (MNI T1w → simulated T2w):
# the mean over seeds 0, 1 and 2 with its sample standard deviation as the error bar, from the
# table of section 2; the dotted line is chance, 1/25 = 4 %. One seed alone would mislead here:
# the shipped seed 0 is the best of the three.

# %%
plot_paper_experiment(three);

# %% tags=["nbval-check-output"]
ours = {"no registration": "identity", "no adaptation": "source", "MCD-SWD": "mcd_swd",
        "MCD-pEMD (16) + SWD": "mcd_pemd16_swd"}
print(f"{'':22s} {'slides':>7s} {'ours, mean ± std':>17s}   {'seeds 0 / 1 / 2':>18s}")
for bar, row in ours.items():
    seeds = " / ".join(f"{100 * a:.1f}" for a in t2["per_seed"][row])
    print(f"{bar:22s} {PAPER_ACCURACY[bar]:6.1f}% {mean_std(t2['per_seed'][row])} % {seeds:>20s}")
margins = {other: [100 * (a - b) for a, b in zip(t2["per_seed"]["mcd_pemd16_swd"], t2["per_seed"][ours[other]],
                                                   strict=True)] for other in ("no adaptation", "MCD-SWD")}
for other, m in margins.items():
    print(f"MCD-pEMD (16) + SWD − {other}: slides {PAPER_ACCURACY['MCD-pEMD (16) + SWD'] - PAPER_ACCURACY[other]:+.1f}, "
          f"ours per seed " + " / ".join(f"{d:+.1f}" for d in m))
assert abs(100 * acc["identity"] - PAPER_ACCURACY["no registration"]) < 0.1  # chance, by construction
assert np.mean(t2["per_seed"]["mcd_pemd16_swd"]) < PAPER_ACCURACY["MCD-pEMD (16) + SWD"] < 100 * acc["mcd_pemd16_swd"]

# %% [markdown]
# The slides' best bar, 44.1 %, lies between our seed 0 (49.2 %) and our three-seed mean (31.9 %);
# with a standard deviation of 15.3 points over three seeds, our mean cannot tell whether this
# rebuild falls short of the slides. What holds on every seed is the margin: each of our three
# seeds is further ahead of no adaptation and of MCD-SWD than the slides' bars are (last lines).

# %% [markdown]
# ## 5. Train it yourself
#
# The same engine as the main job (`train_source`, then `adapt`), with the standard profile's
# steps: the source-only network from scratch on fresh T1w pairs, then MCD-pEMD (16) + SWD on
# unlabelled T2w pairs. The time it took is printed below (about 1.5 minutes on 2 CPU cores), and
# it reproduces the shipped seed-0 networks (a shortened run-through, switched on in the
# configuration cell at the top, trains for fewer steps instead).

# %%
# validation every 50 iterations for the curve below (it reads no training data: same networks)
train_cfg = cfg.replace(source_steps=150, adapt_steps=20, val_every=10) if QUICK else cfg.replace(val_every=50)
started = time.perf_counter()
mine = ConcatNet(train_cfg).to(DEVICE)
train_source(mine, training_pairs(train_cfg, "t1", labelled=True), train_cfg, progress=False)
adapted = copy.deepcopy(mine)
row = "mcd_pemd16_swd"
_, disc, n_angles = PAPER_METHODS[row]
log = adapt(adapted, training_pairs(train_cfg, "t1", labelled=True),
            training_pairs(train_cfg, "t2", labelled=False),  # no labels: the sampler has none to give
            train_cfg, discrepancy=disc, lam=train_cfg.lambda_for(row, "t2"), angles=angles_between(n_angles),
            phase=row, val=evaluation_set(train_cfg, "val", "t2"), progress=False)
print(f"{train_cfg.source_steps} source steps and {train_cfg.adapt_steps} MCD iterations in "
      f"{time.perf_counter() - started:.0f} s")
yours = {"source": patch_accuracy(mine, target_test), row: patch_accuracy(adapted, target_test)}
for name, a in yours.items():
    print(f"{names[name]:24s} yours {100 * a:5.1f} %   shipped {100 * acc[name]:5.1f} %")
if not QUICK:  # the standard profile reproduces the shipped networks
    assert all(abs(yours[name] - acc[name]) < 0.005 for name in yours)

# %%
fig, ax = plt.subplots(figsize=(5.0, 3.0))
steps = [0] + [r["step"] for r in log if r["val_acc"] is not None]
val_curve = ([100 * patch_accuracy(mine, evaluation_set(train_cfg, "val", "t2"))]
             + [100 * r["val_acc"] for r in log if r["val_acc"] is not None])
print("T2w validation accuracy (%) at MCD iterations "
      + ", ".join(f"{s}: {a:.1f}" for s, a in zip(steps, val_curve, strict=True)))
ax.plot(steps, val_curve, marker="o", label="MCD-pEMD (16) + SWD")
ax.axhline(100 / GRID.n_labels, color="k", ls=":", lw=1, label="chance (4 %)")
ax.set_xlabel("MCD iteration")
ax.set_ylabel("T2w validation accuracy (%)")
ax.legend(fontsize=8)
fig.tight_layout()
assert val_curve[-1] > val_curve[0]  # adaptation raised the validation accuracy
if not QUICK:  # in the standard run the last value is above the one before
    assert val_curve[-1] > val_curve[-2]

# %% [markdown]
# The curve is measured on the **validation** pairs (8 other slices), the table above on the test
# pairs: the levels differ (compare the first and last printed values with 7.6 % and 49.2 % on
# test), probably because T2w patches of different slices are not equally hard (not measured). What the curve shows is the
# rise during adaptation; the numbers we report are the test ones. The curve has **not levelled
# off at 200 iterations**: it goes up and down (44.2, 38.6, 44.6 %) and its last values, 44.6 and
# 55.4 %, are its highest. The standard profile stops there because that is what the job's time
# budget allows ([docs/paper.md](../docs/paper.md)), not because adaptation has converged; whether
# longer adaptation scores higher on this seed was not measured.
#
# **Summary.** The slides' experiment, rebuilt: 25 classes on patches, a concatenation network
# trained on fresh pairs, MCD with SWD or with the projected EMD (16 angles) plus SWD. On our
# simulated T2w a network trained on T1w finds few displacements; MCD with SWD does not change
# that, MCD with the projected EMD plus SWD, trained on no T2w label and with λ chosen without
# one, finds several times more here, and 14 to 42 points more than no adaptation over three
# seeds, where the slides report +12. Inverting the moving patch, MIND and the oracle stay far
# ahead.
# [docs/paper.md](../docs/paper.md) has
# the three-seed table, the paired differences, the milder intermediate-weighted target and what
# we measured on the way.
