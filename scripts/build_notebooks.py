# ruff: noqa: E501  (the notebook cells below follow the notebooks' line length, not the package's)
"""Write the tutorial notebooks' cells (without outputs) from this one source.

Usage::

    .venv/bin/python scripts/build_notebooks.py [01 02 ...]   # write tutorials/NN_*.ipynb
    .venv/bin/python scripts/build_notebooks.py --markdown-only 03  # text edits, outputs kept
    bash scripts/run_notebooks.sh [tutorials/NN_*.ipynb ...]  # execute them in place (outputs)

The notebooks are the product; this script only keeps their common header (title, badges, the
Colab-only install cell, the configuration cell) identical and their cells reviewable as code.
Edit a notebook here, rebuild it, re-run it, and commit the executed notebook.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
REPO = "pemd-tutorial/pemd-tutorial"


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


def header(name: str, title: str, intro: str, extra_pip: str = "") -> list:
    binder = f"https://mybinder.org/v2/gh/{REPO}/main?labpath=tutorials%2F{name}"
    colab = f"https://colab.research.google.com/github/{REPO}/blob/main/tutorials/{name}"
    pip = f'"git+https://github.com/{REPO}"' + (f", {extra_pip}" if extra_pip else "")
    return [
        md(
            f"# {title}\n\n"
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder}) "
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})\n\n"
            f"{intro.strip()}"
        ),
        code(
            f"""
# Colab only: install this repository (Colab's own CUDA torch is kept). Does nothing elsewhere.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", {pip}], check=True)
"""
        ),
    ]


CONFIG_COMMON = """
# Configuration: every size below derives from these lines.
import os

import matplotlib.pyplot as plt
import torch

QUICK = bool(os.environ.get("CI") or os.environ.get("PEMD_QUICK"))  # smaller runs for CI
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SEED = 0
torch.manual_seed(SEED)
%matplotlib inline
%config InlineBackend.figure_format = "png"
plt.rcParams.update({"figure.dpi": 72, "savefig.dpi": 72})
"""


def write(name: str, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"
    }
    nb.metadata["language_info"] = {"name": "python"}
    path = ROOT / "tutorials" / name
    nbformat.write(nb, path)
    return path


# ==============================================================================================
# 01: projections
# ==============================================================================================
def notebook_01() -> list:
    cells = header(
        "01_projections.ipynb",
        "1 · Displacement label histograms and their 1D projections",
        """
A registration network in this tutorial does not regress a displacement: for every **control
point** of the fixed image it outputs a probability for each of `L = (2R+1)²` candidate
displacements (the **label grid**). One control point's output is therefore a small **2D
histogram** over displacements. Comparing two such histograms well is the heart of the method of
Heinrich & Hansen (MIDL 2020): they project each histogram onto a few lines and compare the
resulting 1D distributions.

This notebook shows what those projections are: what they keep, what they lose, and why a few
angles together are enough. Notebook 02 turns them into a distance.
""",
    )
    cells += [
        code(
            CONFIG_COMMON
            + """
import numpy as np
from ipywidgets import IntSlider, interact

from data_utils.grid import LabelGrid
from pemd_tutorial import viz
from pemd_tutorial.emd import project_histogram, projected_emd

GRID = LabelGrid(radius=4, step=2.0)  # 9 x 9 = 81 labels, 2 px apart: displacements -8..8 px
print(f"QUICK={QUICK}, DEVICE={DEVICE}, {GRID.n_labels} labels, step {GRID.step} px")
"""
        ),
        md(
            """
## 1. A network output is a 2D histogram over displacements

The labels are the displacements `d = step · (i, j)` with `i, j ∈ -R..R` (`i` along x, `j` along
y, in pixels; see `data_utils/grid.py` for the one definition of order and units). A histogram of
shape `(L,)` reshapes to `(2R+1, 2R+1)` like an image patch: x to the right, **y down**.

Three typical outputs: a confident peak, a broad (uncertain) one, and a bimodal one (two
plausible matches, e.g. a repeated structure).
"""
        ),
        code(
            """
peak = viz.peak_histogram(GRID, center=(4.0, -2.0), width=2.5)             # confident
broad = viz.peak_histogram(GRID, center=(-2.0, 2.0), width=4.0, kind="gaussian")  # uncertain
bimodal = 0.6 * viz.peak_histogram(GRID, (-4.0, -4.0), 2.5) + 0.4 * viz.peak_histogram(GRID, (4.0, 4.0), 2.5)

fig, axes = plt.subplots(1, 3, figsize=(8.4, 2.8))
for ax, (name, h) in zip(axes, {"peak": peak, "broad": broad, "bimodal": bimodal}.items(), strict=True):
    viz.plot_histogram(ax, h, GRID, title=name)
fig.tight_layout()
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
d = GRID.displacements(dtype=torch.float64)  # (L, 2): (dx, dy) of every label
for name, h in {"peak": peak, "broad": broad, "bimodal": bimodal}.items():
    mean = h @ d
    print(f"{name:8s} sum={float(h.sum()):.3f}  most likely d={d[h.argmax()].tolist()}  mean d={mean.numpy().round(2).tolist()}")
assert all(abs(float(h.sum()) - 1) < 1e-12 for h in (peak, broad, bimodal))
assert d[peak.argmax()].tolist() == [4.0, -2.0]
"""
        ),
        md(
            """
## 2. Projecting onto a line at angle θ

Pick a direction `u = (cos θ, sin θ)` (θ = 0 is +x, θ = 90° is +y, which points **down** in the
plots). Every label `d_k` lands at the position `t_k = ⟨d_k, u⟩` on that line and brings its mass
`p_k` with it; labels that land on the same position add up:

$$ (P_\\theta\\, p)(t) = \\sum_{k:\\ \\langle d_k, u\\rangle = t} p_k . $$

This is `pemd_tutorial.emd.project_histogram`. Move the slider: at 0°, 45°, 90° and 135° the
lattice points fall onto few, equally spaced positions (9 or 17 bins); at other angles nearly
every label gets its own position.
"""
        ),
        code(
            """
explorer = viz.ProjectionExplorer(bimodal, GRID)
interact(explorer.show, angle=IntSlider(value=30, min=0, max=180, step=5, description="angle θ (deg)",
                                   continuous_update=False));
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
for angle in (0, 30, 45, 90, 135):
    positions, masses = project_histogram(bimodal, GRID.shape, float(angle), GRID.step)
    print(f"θ = {angle:3d}°: {positions.numel():2d} distinct positions, total mass {float(masses.sum()):.3f}")
pos_slider, mass_slider = explorer.last_projection
assert abs(mass_slider.sum() - 1.0) < 1e-9 and np.all(np.diff(pos_slider) > 0)
assert project_histogram(bimodal, GRID.shape, 45.0, GRID.step)[0].numel() == 4 * GRID.radius + 1
"""
        ),
        md(
            """
## 3. What a projection keeps and what it loses

It **keeps** the total mass and everything *along* the line: the mean position
`⟨E[d], u⟩`, the spread along `u`, how many modes are separated along `u`.

It **loses** everything *across* the line. Mirror a histogram about the x axis (`dy → -dy`): its
projection at 0° (onto x) does not change at all, although it now predicts a different
displacement. At 90° (onto y) the two are clearly different.
"""
        ),
        code(
            """
mirrored = peak.reshape(GRID.shape).flip(0).reshape(-1)  # dy -> -dy
viz.plot_projection_pair(peak, mirrored, GRID, 0.0)
viz.plot_projection_pair(peak, mirrored, GRID, 90.0);
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
_, m0_p = project_histogram(peak, GRID.shape, 0.0, GRID.step)
_, m0_q = project_histogram(mirrored, GRID.shape, 0.0, GRID.step)
pos90, m90_p = project_histogram(peak, GRID.shape, 90.0, GRID.step)
_, m90_q = project_histogram(mirrored, GRID.shape, 90.0, GRID.step)
u = torch.tensor([np.cos(np.radians(30)), np.sin(np.radians(30))], dtype=torch.float64)
pos30, m30 = project_histogram(peak, GRID.shape, 30.0, GRID.step)
print(f"0°: max |difference| = {float((m0_p - m0_q).abs().max()):.3f}")
print(f"90°: max |difference| = {float((m90_p - m90_q).abs().max()):.3f}")
print(f"mean along 30°: projection {float(pos30 @ m30):.3f} px, 2D mean · u {float(peak @ d @ u):.3f} px")
assert torch.equal(m0_p, m0_q) and not torch.allclose(m90_p, m90_q)
assert abs(float(pos30 @ m30) - float(peak @ d @ u)) < 1e-9  # the mean along the line is kept
"""
        ),
        md(
            """
## 4. Several angles together

One line is blind to one direction; a few lines together are not. A distribution on the plane
is determined by all its 1D projections (the Cramér–Wold theorem, the idea behind the Radon
transform and CT), and on a small lattice four lines already see almost everything: the two axes
and the two diagonals, the angles at which lattice points fall into exact, equally spaced bins.
Each projection of the bimodal histogram tells a different part of the story:
"""
        ),
        code(
            """
ANGLES = (0.0, 45.0, 90.0, 135.0)  # the paper's (and this package's default) angles
viz.plot_projection_angles(bimodal, GRID, ANGLES);
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
for angles in [(0.0,), (90.0,), ANGLES]:
    value = projected_emd(peak, mirrored, GRID.shape, angles=angles, step=GRID.step)
    print(f"projected EMD(peak, mirrored) with angles {angles}: {float(value):.3f} px")
assert float(projected_emd(peak, mirrored, GRID.shape, angles=(0.0,), step=GRID.step)) < 1e-12
assert float(projected_emd(peak, mirrored, GRID.shape, angles=ANGLES, step=GRID.step)) > 1.0
"""
        ),
        md(
            """
With the x axis alone the two histograms look identical (distance 0); with four angles the
mirrored prediction is clearly told apart. `projected_emd` is introduced properly in
notebook 02.

## 5. Two different distributions side by side

The comparison the method makes, one line at a time: the confident peak against the broad
prediction. Along 45° their projections overlap only partly; how far the mass of one has to
travel to become the other is the 1D Earth Mover's distance of notebook 02.
"""
        ),
        code(
            """
viz.plot_projection_pair(peak, broad, GRID, 45.0);
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
for angle in ANGLES:
    pos, mp = project_histogram(peak, GRID.shape, angle, GRID.step)
    _, mq = project_histogram(broad, GRID.shape, angle, GRID.step)
    shift = float(pos @ (mq - mp))
    print(f"θ = {angle:5.1f}°: mean of broad − mean of peak along the line = {shift:+.2f} px")
pos, mp = project_histogram(peak, GRID.shape, 45.0, GRID.step)
_, mq = project_histogram(broad, GRID.shape, 45.0, GRID.step)
assert abs(float(pos @ (mq - mp)) - float((broad - peak) @ d @ torch.tensor([1.0, 1.0], dtype=torch.float64)) / 2**0.5) < 1e-9
"""
        ),
        md(
            """
**Summary.** A projection keeps the mass and the geometry *along* its line and forgets the
geometry across it; four lines at 0°, 45°, 90° and 135° see a 2D label histogram from enough
sides to compare two of them. Next: [02 · The cumulative-sum L1 distance](02_cumsum_emd.ipynb).
"""
        ),
    ]
    return cells


# ==============================================================================================
# 02: the cumulative-sum L1 distance
# ==============================================================================================
def notebook_02() -> list:
    cells = header(
        "02_cumsum_emd.ipynb",
        "2 · The cumulative-sum L1 distance (projected EMD)",
        """
In 1D the Earth Mover's distance has a closed form: the L1 distance of the cumulative sums.
Heinrich & Hansen project 2D label histograms onto a few lines (notebook 01) and use this closed
form on each line. This notebook derives it, checks it against POT's exact solver, shows why L1
and KL are poor discrepancies for displacement histograms, and compares the projected EMD with
the sliced Wasserstein discrepancy (Lee et al., CVPR 2019) and the exact 2D EMD.
""",
        extra_pip='"POT"',
    )
    cells += [
        code(
            CONFIG_COMMON
            + """
import time

import numpy as np
import ot  # POT: Python Optimal Transport, the exact solver we check against
from ipywidgets import FloatSlider, interact

from data_utils.grid import LabelGrid
from pemd_tutorial import viz
from pemd_tutorial.emd import (
    emd_1d,
    exact_emd,
    project_histogram,
    projected_emd,
    sliced_wasserstein_discrepancy,
)

GRID = LabelGrid(radius=4, step=2.0)
N_PAIRS = 300  # random histogram pairs for section 3 (about 0.5 s; the same in quick mode)
rng = np.random.default_rng(SEED)
print(f"QUICK={QUICK}, DEVICE={DEVICE}, {GRID.n_labels} labels, {N_PAIRS} pairs")
"""
        ),
        md(
            """
## 1. 1D EMD = L1 distance of the cumulative sums

Two histograms `a, b` on sorted positions `x_1 < … < x_n` with equal total mass. Look at the gap
between `x_j` and `x_{j+1}`. Left of it, `a` has mass `C_a(j) = Σ_{i≤j} a_i` and `b` has
`C_b(j)`. Any plan that turns `a` into `b` must carry the surplus `C_a(j) − C_b(j)` across that gap
(to the right if positive, to the left if negative), so its cost is at least
`|C_a(j) − C_b(j)| · (x_{j+1} − x_j)` for that gap. The monotone plan (move mass in order, never
crossing) carries exactly that much and no more across every gap at once, so it is optimal:

$$ \\mathrm{EMD}_{1D}(a, b) = \\sum_{j=1}^{n-1} \\big| C_a(j) - C_b(j) \\big| \\,(x_{j+1} - x_j)
\\;\\overset{\\text{equal gaps } \\Delta x}{=}\\; \\Delta x \\,\\lVert C_a - C_b \\rVert_1 . $$

No linear program, no sorting of samples: one cumulative sum and an absolute value, `O(n)`
and differentiable almost everywhere. The grey area below *is* the distance:
"""
        ),
        code(
            """
x = np.arange(9) * GRID.step - GRID.max_displacement  # 9 bins, 2 px apart
a = rng.dirichlet(np.full(9, 0.5))
b = rng.dirichlet(np.full(9, 0.5))
viz.plot_cumsums(x, a, b);
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
ours = float(emd_1d(torch.tensor(a), torch.tensor(b), spacing=GRID.step))
lp = float(ot.emd2(a, b, np.abs(x[:, None] - x[None, :])))  # the exact linear program
w1 = float(ot.wasserstein_1d(x, x, a, b, p=1))
print(f"cumulative-sum L1: {ours:.6f}   POT emd2 (LP): {lp:.6f}   POT wasserstein_1d: {w1:.6f}")
# many random pairs, also on unequally spaced positions (the projection at an arbitrary angle)
errors = []
for angle in (0.0, 30.0, 45.0, 71.0):
    p, q = (torch.tensor(rng.dirichlet(np.full(GRID.n_labels, 0.3))) for _ in range(2))
    pos, mp = project_histogram(p, GRID.shape, angle, GRID.step)
    _, mq = project_histogram(q, GRID.shape, angle, GRID.step)
    ours_angle = float(projected_emd(p, q, GRID.shape, angles=(angle,), step=GRID.step))
    errors.append(abs(ours_angle - float(ot.emd2(mp.numpy(), mq.numpy(), np.abs(pos.numpy()[:, None] - pos.numpy()[None, :])))))
print(f"largest difference to POT's LP over 4 angles: {max(errors):.1e}")
assert abs(ours - lp) < 1e-9 and abs(ours - w1) < 1e-9 and max(errors) < 1e-9
"""
        ),
        md(
            """
## 2. Why L1 and KL saturate while EMD keeps growing

Take a confident prediction `p` (a peak) and move a second one, `q`, away from it. For
registration the second is *worse* the further it is: its displacement error grows with the
shift. A useful discrepancy should say so.

* **L1** `Σ|p − q|` grows while the peaks overlap and is stuck at 2 as soon as they do not,
  whether they are 4 px or 40 px apart.
* **KL** (with the small floor any softmax has) does the same: it saturates at a constant.
* **EMD** is the mass times the distance it has to travel: it grows linearly with the shift.
  The projected EMD (4 angles) grows linearly too, with a slope below 1 (section 3 explains it).

Move the slider:
"""
        ),
        code(
            """
SHIFTS = np.arange(0.0, 2 * GRID.max_displacement - 2 * GRID.step + 0.1, 1.0)  # px, along +x
curves = viz.shift_curves(GRID, SHIFTS)
interact(viz.ShiftExplorer(GRID, curves).show,
         shift=FloatSlider(value=4.0, min=0.0, max=float(SHIFTS[-1]), step=1.0, description="shift (px)",
                           continuous_update=False));
"""
        ),
        code(
            """
viz.plot_shift_curves(curves);  # the same curves, as a static figure
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
for s in (0, 2, 4, 6, 8, 12):
    i = int(np.flatnonzero(curves["shift"] == s)[0])
    print(f"shift {s:2d} px: L1 {curves['l1'][i]:.3f}  KL {curves['kl'][i]:7.3f}  "
          f"exact EMD {curves['exact_emd'][i]:6.3f}  projected EMD {curves['projected_emd'][i]:6.3f}")
far = curves["shift"] >= 6
assert np.allclose(curves["l1"][far], 2.0) and np.ptp(curves["kl"][far]) < 1e-9  # saturated
assert np.all(np.diff(curves["exact_emd"]) > 0) and np.all(np.diff(curves["projected_emd"]) > 0)
"""
        ),
        md(
            """
## 3. Projected EMD vs sliced Wasserstein (Lee) vs exact EMD

We now compare, on random pairs of label histograms that look like network outputs (one or two
peaks of random width at random places), four discrepancies with the exact 2D EMD (POT's linear
program with the Euclidean distance between displacements as ground cost):

* **projected EMD** (the paper): 4 angles, cumulative-sum L1 on each line, averaged;
* **SWD (Lee et al.)** as used in MCD: the probability vector in `R^L` is projected onto 128 random
  directions of `R^L` and squared differences are averaged. For one pair per "batch" the sorting
  along the batch does nothing, and what is left is a random-projection estimate of `‖p − q‖²/L`:
  it **does not know which labels are neighbours**;
* **L1** `mean |p − q|` (Saito et al.), likewise blind to the grid geometry.

A good discrepancy for registration should rank pairs like the exact EMD does.
"""
        ),
        code(
            """
def random_prediction(rng):
    \"\"\"One or two peaks of random width at random places: a plausible network output.\"\"\"
    h = torch.zeros(GRID.n_labels, dtype=torch.float64)
    weights = rng.dirichlet([1.0, 1.0]) if rng.random() < 0.5 else [1.0]
    for weight in weights:
        center = rng.uniform(-GRID.max_displacement, GRID.max_displacement, 2)
        h += weight * viz.peak_histogram(GRID, center, width=rng.uniform(1.0, 5.0), kind="gaussian")
    return h


P = torch.stack([random_prediction(rng) for _ in range(N_PAIRS)])
Q = torch.stack([random_prediction(rng) for _ in range(N_PAIRS)])
gen = torch.Generator().manual_seed(SEED)
methods = {
    "exact EMD (POT LP)": lambda: exact_emd(P, Q, GRID.shape, step=GRID.step),
    "projected EMD": lambda: projected_emd(P, Q, GRID.shape, step=GRID.step, reduction="none"),
    "SWD (Lee)": lambda: torch.stack([sliced_wasserstein_discrepancy(P[i:i + 1], Q[i:i + 1], generator=gen)
                                      for i in range(N_PAIRS)]),
    "L1": lambda: (P - Q).abs().mean(dim=1),
}
values, timings = {}, {}
for name, compute in methods.items():
    t0 = time.perf_counter()
    values[name] = compute().numpy()
    timings[name] = time.perf_counter() - t0
exact = values.pop("exact EMD (POT LP)")
viz.plot_correlation(exact, values);
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
rho = {name: viz.spearman(exact, v) for name, v in values.items()}
for name, r in rho.items():
    print(f"Spearman rank correlation with the exact EMD, {name:14s}: {r:.2f}")
assert rho["projected EMD"] > 0.95 and rho["projected EMD"] > rho["SWD (Lee)"] + 0.1
assert np.all(values["projected EMD"] <= exact + 1e-9)  # a sliced distance never exceeds the exact one
"""
        ),
        code(
            """
# timings on this machine (not compared by the tests: they vary)
for name, seconds in timings.items():
    print(f"{name:20s} {1e6 * seconds / N_PAIRS:9.1f} µs per pair")
assert timings["projected EMD"] < timings["exact EMD (POT LP)"]
"""
        ),
        md(
            """
### The approximation factor

Why is the projected EMD *below* the exact EMD, and by how much? For a pure translation of a
histogram by a vector `v`, the exact EMD is `‖v‖`, and the projection onto `u_θ` is translated by
`⟨v, u_θ⟩`, so

$$ \\mathrm{pEMD} = \\frac{1}{K}\\sum_k |\\langle v, u_{\\theta_k}\\rangle| = \\lVert v\\rVert \\cdot
\\frac{1}{K}\\sum_k |\\cos(\\theta_k - \\varphi)| . $$

Averaged over all directions, `E|cos| = 2/π ≈ 0.64`. With the four angles 0°, 45°, 90°, 135° the
factor depends on the direction `φ` of `v` and lies between `(1 + √2)/4 ≈ 0.60` (along an axis or
a diagonal) and `(cos 22.5° + sin 22.5°)/2 ≈ 0.65` (half way between). In general (not only for
translations) every 1D projection is 1-Lipschitz, so `pEMD ≤ EMD` always. A roughly constant
factor does not matter for training: it rescales the loss, which the weight λ absorbs, and the
rank order, which decides what the gradients prefer, is kept.
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
ANGLES = (0.0, 45.0, 90.0, 135.0)
ratio = (values["projected EMD"] / exact)[exact > 0.5]


def factor(phi):
    \"\"\"pEMD / EMD of a translation in direction phi (degrees), 4 angles.\"\"\"
    return np.abs(np.cos(np.radians(np.array(ANGLES) - phi))).mean()


print(f"pEMD / EMD on the random pairs: median {np.median(ratio):.2f}, range {ratio.min():.2f}..{ratio.max():.2f}")
print(f"translation factor: along x {factor(0):.3f}, at 22.5° {factor(22.5):.3f}, all directions 2/π = {2 / np.pi:.3f}")
fig, ax = plt.subplots(figsize=(4, 2.6))
ax.hist(ratio, bins=30)
ax.set_xlabel("projected EMD / exact EMD")
assert 0.55 < np.median(ratio) < 0.75 and ratio.max() <= 1.0 + 1e-9
"""
        ),
        md(
            """
**Summary.** In 1D, EMD is the L1 distance of cumulative sums (exact, cheap, differentiable).
Projecting 2D label histograms onto four lines and averaging gives a discrepancy that grows with
the displacement error (where L1 and KL saturate), ranks pairs almost like the exact EMD
(where Lee's SWD, blind to the label geometry, does not) and costs a matrix product.
Next: [03 · Mono- to multimodal transfer](03_mono_to_multimodal.ipynb).
"""
        ),
    ]
    return cells


# ==============================================================================================
# 03: mono- to multimodal transfer
# ==============================================================================================
def notebook_03() -> list:
    cells = header(
        "03_mono_to_multimodal.ipynb",
        "3 · Mono- to multimodal transfer by maximum classifier discrepancy",
        """
The whole method on the embedded MNI152 data: a network that registers **T1w to T1w** (source
domain, labels known from synthetic deformations) is adapted, **without any target label**, to
register **T1w to T2w** (target domain) by maximum classifier discrepancy (MCD, Saito et al. 2018)
with three discrepancies between its two classifier heads: L1, Lee's sliced Wasserstein (SWD), and
the projected EMD (pEMD) of notebooks 01 and 02.

Sections 1 to 6 use the networks that ship with the package: the main job's standard profile,
seed 0 (`python -m pemd_tutorial` trains the same networks for seeds 0, 1 and 2). They load and
evaluate in well under a minute on a laptop CPU. Section 7 trains them again, yourself, in about
4 minutes on 2 CPU cores.
""",
    )
    cells += [
        code(
            CONFIG_COMMON
            + """
from ipywidgets import IntSlider, interact

from data_utils import load_embedded, plot_pair_montage
from pemd_tutorial import viz
from pemd_tutorial.config import Config
from pemd_tutorial.evaluate import evaluate_probs, identity_probs, true_label_histogram
from pemd_tutorial.experiment import METHOD_NAMES, make_data, run_experiment
from pemd_tutorial.mind import mind_baseline
from pemd_tutorial.pretrained import PRETRAINED_NAMES, load_pretrained, pretrained_manifest
from pemd_tutorial.report import (
    pick_points,
    plot_accuracy,
    plot_distributions,
    plot_examples,
    plot_label_histogram,
    plot_paper_comparison,
    plot_training_curves,
)
from pemd_tutorial.training import predict

manifest = pretrained_manifest()
cfg = Config.from_dict({**manifest["config"], "device": DEVICE})  # the standard profile, seed 0
GRID = cfg.grid
print(f"QUICK={QUICK}, DEVICE={DEVICE}; shipped networks: {', '.join(manifest['networks'])}")
print(f"image {cfg.image_size} px, {GRID.n_labels} labels (step {GRID.step} px), control points {cfg.control_shape}")
"""
        ),
        md(
            """
## 1. The data

The embedded data are axial slices of the MNI ICBM152 2009a template: the **real T1w** image and
a **T2w** image simulated from its grey matter / white matter / CSF maps with the spin-echo signal
equation (TR/TE = 4000/100 ms). The contrast is inverted: CSF is dark in T1w and bright in T2w.
Move the slider through the slices:
"""
        ),
        code(
            """
slices = load_embedded("all", contrasts=("t1", "t2"), size=128, with_tissues=True)
volumes = {"T1w": slices.images["t1"], "T2w (simulated)": slices.images["t2"],
           "grey matter": slices.tissues["gm"], "white matter": slices.tissues["wm"], "CSF": slices.tissues["csf"]}
interact(viz.SliceExplorer(volumes).show,
         index=IntSlider(value=len(slices) // 2, min=0, max=len(slices) - 1, description="slice", continuous_update=False));
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
def tissue_means(image):
    return {t: float((image * w).sum() / w.sum()) for t, w in slices.tissues.items()}


t1, t2 = tissue_means(slices.images["t1"]), tissue_means(slices.images["t2"])
print(f"{len(slices)} slices of {tuple(slices.images['t1'].shape[1:])} px")
print("mean intensity  T1w:", {k: round(v, 2) for k, v in t1.items()}, " T2w:", {k: round(v, 2) for k, v in t2.items()})
assert t1["wm"] > t1["gm"] > t1["csf"] and t2["csf"] > t2["gm"] > t2["wm"]  # inverted contrast
"""
        ),
        md(
            """
**Pairs.** Each pair is a fixed T1w slice warped by a random smooth deformation and a moving image
(plus intensity changes: bias field, noise, contrast jitter). In the **source** domain the moving
image is T1w and every control point gets its true label (its displacement rounded to the label
grid). In the **target** domain the moving image is T2w; its labels exist for evaluation, but the
training code never sees them. `make_data` builds the pairs of one seed; the test pairs are the
same for every method and seed.

The deformations reach every ring of the 9x9 label grid: doing nothing (the identity) is right at
only a few percent of the points and within one label of the truth at about a third of them.
"""
        ),
        code(
            """
data = make_data(cfg, SEED)
plot_pair_montage({"source T1w→T1w": data.source_test, "target T1w→T2w": data.target_test}, indices=(0,),
                  title="fixed | moving | moving warped back by the true field");
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
batch = data.target_test.batch()
hist = true_label_histogram(data.target_test, GRID)
print(f"{len(data.source_train)} source + {len(data.target_train)} target training pairs, {len(data.target_test)} test pairs")
print("true labels of the target test points per ring:", [round(100 * r, 1) for r in hist["ring_shares"]], "%")
plot_label_histogram(hist, GRID)
assert "labels" not in data.target_train[0]  # the training view of the target domain has no labels
assert hist["identity_within_one"] <= 0.5 and min(hist["ring_shares"]) >= 0.01  # the whole grid is used
"""
        ),
        md(
            """
## 2. The network

`RegistrationNet` (a 2D PDD-Net-like design): a shared CNN **G** extracts features of both images;
a **correlation layer** compares the fixed feature at each control point with the moving feature
shifted by every label, giving a cost volume `(B, L, Hc, Wc)`, smoothed over neighbouring control
points; two small convolutional heads **F1** and **F2** turn it into logits over the `L` labels.
The softmax over `L` at one control point is the 2D label histogram of notebook 01.
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
models = {name: load_pretrained(name, device=DEVICE) for name in PRETRAINED_NAMES}
net = models["source"]
n_g = sum(p.numel() for p in net.generator_parameters())
n_f = sum(p.numel() for p in net.head_parameters())
with torch.no_grad():
    logits1, logits2 = net(batch["fixed"][:2].to(DEVICE), batch["moving"][:2].to(DEVICE))
print(f"G: {n_g} parameters, F1 + F2: {n_f} parameters; logits of each head: {tuple(logits1.shape)}")
assert logits1.shape == (2, GRID.n_labels, *cfg.control_shape) and not torch.equal(logits1, logits2)
"""
        ),
        md(
            """
## 3. The shipped networks on the target test pairs

Five networks of the main job (standard profile, seed 0):

* **source only**: trained with labels on T1w→T1w pairs;
* **MCD-L1, MCD-SWD, MCD-pEMD**: that same network adapted by MCD with each discrepancy. Each MCD
  iteration has three steps on a source batch and an *unlabelled* target batch: **A** G, F1, F2
  minimise the source cross-entropy; **B** G frozen, F1 and F2 minimise
  `CE_source − λ·D(F1, F2 on target)` (they learn to **disagree** on target points); **C** the
  heads frozen, G minimises `D` on the target (features on which the heads **agree**);
* **oracle**: the same network trained with the target labels: an upper bound no unsupervised
  method can use.

Two references need no training: the **identity** (zero displacement everywhere) and the
classical **MIND** baseline (modality-independent descriptors with the same discrete label search).
"""
        ),
        code(
            """
hc, wc = cfg.control_shape
probs = {"identity": identity_probs(len(data.target_test), GRID, hc, wc), "mind": mind_baseline(data.target_test, cfg)}
heads = {name: predict(model, data.target_test) for name, model in models.items()}
probs.update({name: 0.5 * (p1 + p2) for name, (p1, p2) in heads.items()})
results = {name: evaluate_probs(p, data.target_test, cfg) for name, p in probs.items()}
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
print(f"{'method':28s} {'accuracy':>9s} {'within one':>11s} {'EPE (px)':>9s}")
for name, r in results.items():
    print(f"{METHOD_NAMES[name]:28s} {100 * r['accuracy']:8.1f}% {100 * r['within_one']:10.1f}% {r['epe']:9.2f}")
for name in PRETRAINED_NAMES:  # the same numbers as when the networks were built
    assert abs(results[name]["accuracy"] - manifest["networks"][name]["metrics"]["accuracy"]) < 0.005
assert results["mcd_pemd"]["accuracy"] > results["mcd_swd"]["accuracy"] + 0.10  # pEMD far ahead of SWD
assert results["mcd_pemd"]["accuracy"] > results["source"]["accuracy"] + 0.20  # ... and of no adaptation
"""
        ),
        code(
            """
one_seed = {"methods": list(results), "seeds": [SEED], "chance": 1 / GRID.n_labels, "method_names": METHOD_NAMES,
            "summary": {m: r for m, r in results.items()}, "per_seed": {m: [r] for m, r in results.items()}}
plot_accuracy(one_seed);
"""
        ),
        md(
            """
The network trained on T1w→T1w pairs is below the identity on T1w→T2w pairs: a T2w image is dark
where the T1w is bright, and the features it learned do not transfer. MCD with the projected EMD
recovers a large part of the gap **without a single target label**; with L1 or SWD, adaptation
achieves little. `make main` reports the same over three seeds (mean ± std); see the README.

## 4. Beside the paper

The authors' talk slides (MIDL 2020) report target label accuracy for their experiment: 2D
patches of canine T1w/T2w MRI, 25 displacement classes, a network that concatenates the features
of both patches. Our setting differs: 81 dense labels per control point, a correlation layer
instead of concatenation, and a simulated T2w with a total domain gap (no adaptation is below
chance-level usefulness here, 31.9 % there). What carries over is the ordering and the reason for
it: SWD is blind to where the mass of a label histogram sits, pEMD is not.
"""
        ),
        code(
            """
plot_paper_comparison({k: results[k]["accuracy"] for k in ("identity", "source", "mcd_swd", "mcd_pemd")})
assert results["mcd_pemd"]["accuracy"] > results["mcd_swd"]["accuracy"]  # the paper's ordering of the two
"""
        ),
        md(
            """
## 5. Training curves

The target validation accuracy while the networks were trained (stored with them). Left: the
supervised phases from scratch (the source-only network stays near chance on the target; the
oracle learns it with labels). Right: the adaptation phases, which start from the source-only
network.
"""
        ),
        code(
            """
curves = {name: entry["target_val_curve"] for name, entry in manifest["networks"].items()}
plot_training_curves(curves, chance=1 / GRID.n_labels)
assert curves["mcd_pemd"][-1][1] > curves["mcd_pemd"][0][1]  # adaptation raised the target accuracy
"""
        ),
        md(
            """
## 6. Inside the heads, and the warped images

Pick a control point of the first test pair (the cross marks the true displacement). Before
adaptation F1 and F2 come from source training only; after MCD-pEMD they were pushed to disagree
on target points (step B) and G was pushed to make them agree (step C). What improves is where
their mass sits relative to the cross. The static figure below the slider shows three points
chosen automatically (the largest displacements), for readers of a non-interactive copy.
"""
        ),
        code(
            """
dists = {f"{head} {name}": heads[name][k][0] for name in ("source", "mcd_pemd") for k, head in enumerate(("F1", "F2"))}
explorer = viz.ControlPointExplorer(dists, GRID, truth=batch["displacement"][0], ncols=4)
interact(explorer.show, row=IntSlider(value=hc // 2, min=0, max=hc - 1, description="row", continuous_update=False),
         col=IntSlider(value=wc // 2, min=0, max=wc - 1, description="column", continuous_update=False));
"""
        ),
        code(
            """
points = pick_points(batch, k=3)  # the largest true displacements, spread out
plot_distributions({name: (heads[name][0][:1], heads[name][1][:1]) for name in ("source", "mcd_pemd")}, GRID,
                   points, truth=batch["displacement"][0]);
"""
        ),
        md(
            """
Each column warps the moving T2w image with a method's expected displacement `Σ_k p_k d_k`
(interpolated from the control points); a good registration looks like the column "truth".
Arrows are the displacements at the control points.
"""
        ),
        code(
            """
show = {k: probs[k] for k in ("mind", "source", "mcd_swd", "mcd_pemd", "oracle")}
plot_examples({k: v[:2] for k, v in batch.items()}, {k: v[:2] for k, v in show.items()}, GRID, cfg.control_spacing,
              names=METHOD_NAMES, n_rows=2)
assert results["mcd_pemd"]["epe"] < results["source"]["epe"]  # adapted displacements are closer to the truth
"""
        ),
        md(
            """
## 7. Train it yourself

`run_experiment` is what `python -m pemd_tutorial` runs. Here it trains the five networks of
seed 0 again with the standard profile (about 4 minutes on 2 CPU cores; progress bars show each
phase), or with the `quick` smoke-test profile when `QUICK` is set (continuous integration).
On the CPU and torch version that built the shipped networks, the standard run reproduces them
exactly; elsewhere rounding may move a number by a few tenths of a point.
"""
        ),
        code(
            """
train_cfg = Config.quick(device=DEVICE) if QUICK else cfg.replace(device=DEVICE)
mine = run_experiment(train_cfg, methods=PRETRAINED_NAMES, seeds=(SEED,), out_dir=None, progress=True)
"""
        ),
        code(
            """
print(f"{'method':24s} {'shipped':>8s} {'yours':>8s}   ({'quick' if QUICK else 'standard'} profile, "
      f"{mine['wall_time_s']:.0f} s)")
for name in PRETRAINED_NAMES:
    shipped, yours = results[name]["accuracy"], mine["per_seed"][name][0]["accuracy"]
    print(f"{METHOD_NAMES[name]:24s} {100 * shipped:7.1f}% {100 * yours:7.1f}%")
assert mine["per_seed"]["oracle"][0]["accuracy"] > mine["per_seed"]["source"][0]["accuracy"]  # the domain gap
if not QUICK:  # the standard profile reproduces the shipped networks
    for name in PRETRAINED_NAMES:
        assert abs(mine["per_seed"][name][0]["accuracy"] - results[name]["accuracy"]) < 0.005
"""
        ),
        md(
            """
**Summary.** A network trained on mono-modal pairs does not transfer to T1w→T2w; MCD uses the
disagreement of two heads on unlabelled target pairs to adapt it, and the projected EMD measures
that disagreement with the geometry of the label grid, which is what makes the adaptation work.
Next: [04 · Your own data](04_your_own_data.ipynb).
"""
        ),
    ]
    return cells


# ==============================================================================================
# 04: your own data
# ==============================================================================================
def notebook_04() -> list:
    cells = header(
        "04_your_own_data.ipynb",
        "4 · Your own data: NIfTI in, registration out",
        """
How to use a trained model on your own images: load an **aligned** pair of NIfTI volumes (for
example a subject's T1w and T2w) with nibabel, cut them into 2D slices, register pairs of slices
with the shipped MCD-pEMD network (notebook 03), and write the results (warped images, displacement fields in
millimetres) back as NIfTI files in the original voxel grid.

So that it runs anywhere, the notebook first *writes* such a pair from the embedded data. Set
`FIXED_PATH` and `MOVING_PATH` below to use your own files instead.
""",
    )
    cells += [
        code(
            CONFIG_COMMON
            + """
from pathlib import Path

import nibabel as nib
import numpy as np

from data_utils import load_embedded, load_nifti_pair, make_pairs, save_nifti, warp
from pemd_tutorial import viz
from pemd_tutorial.evaluate import dense_field, evaluate_probs
from pemd_tutorial.pretrained import load_pretrained
from pemd_tutorial.training import predict

FIXED_PATH = None   # e.g. "/data/sub-01_T1w.nii.gz"  (None: write a demo pair from the embedded data)
MOVING_PATH = None  # e.g. "/data/sub-01_T2w.nii.gz"  (must be aligned with FIXED_PATH, same voxel grid)
OUT = Path("results") / "notebook04"  # next to this notebook; results/ is not committed
OUT.mkdir(parents=True, exist_ok=True)
print(f"QUICK={QUICK}, DEVICE={DEVICE}")
"""
        ),
        md(
            """
## 1. An aligned NIfTI pair

A NIfTI file holds a voxel array and an **affine**, the 4×4 matrix from voxel indices to world
coordinates in millimetres (RAS+: x to the subject's right, y anterior, z superior). The demo
pair stacks the 8 embedded test slices (128×128, 1 mm) into two volumes `(x, y, z)` with an
identity affine. Image rows run from anterior (top) to posterior, so row `r` is `y = H − 1 − r`.
"""
        ),
        code(
            """
if FIXED_PATH is None:
    demo = load_embedded("test", contrasts=("t1", "t2"), size=128)
    for name, images in (("fixed_T1w", demo.images["t1"]), ("moving_T2w", demo.images["t2"])):
        vol = images.flip(1).permute(2, 1, 0).numpy()  # (N, rows, cols) -> (x, y, z)
        nib.save(nib.Nifti1Image(vol.astype(np.float32), affine=np.eye(4)), OUT / f"{name}.nii.gz")
    FIXED_PATH, MOVING_PATH = OUT / "fixed_T1w.nii.gz", OUT / "moving_T2w.nii.gz"
img = nib.load(FIXED_PATH)
print(f"{Path(FIXED_PATH).name}: shape {img.shape}, voxel size {tuple(float(z) for z in img.header.get_zooms())} mm, "
      f"orientation {''.join(nib.aff2axcodes(img.affine))}")
assert nib.load(MOVING_PATH).shape == img.shape
"""
        ),
        md(
            """
## 2. Loading the pair as slices

`load_nifti_pair` checks that both files share the voxel grid (shape and affine), reorients them
to RAS+, normalises intensities by percentiles (1 %→0, 99 %→1), cuts slices along `axis`
(2 = axial) that contain enough foreground, and resamples them to the model's size. It keeps the
geometry needed to write results back.
"""
        ),
        code(
            """
model = load_pretrained("mcd_pemd", device=DEVICE)  # shipped with the package (notebook 03)
cfg = model.config
slices = load_nifti_pair(FIXED_PATH, MOVING_PATH, axis=2, size=cfg.image_size)
viz.plot_modalities({"fixed (T1w)": slices.images["t1"][len(slices) // 2],
                     "moving (T2w)": slices.images["t2"][len(slices) // 2]}, title="a loaded slice");
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
print(f"{len(slices)} slices at z = {slices.slice_index.tolist()}, normalised to [0, 1]")
if Path(FIXED_PATH).parent == OUT:  # the demo pair: the loaded slices are the embedded ones
    ref = load_embedded("test", contrasts=("t1",), size=cfg.image_size).images["t1"]
    r = np.corrcoef(ref.flatten(), slices.images["t1"].flatten())[0, 1]
    print(f"correlation with the embedded T1w slices: {r:.3f}")
    assert r > 0.99  # same orientation, same slices
assert slices.images["t1"].shape == slices.images["t2"].shape == (len(slices), cfg.image_size, cfg.image_size)
"""
        ),
        md(
            """
## 3. Running the trained model

The shipped MCD-pEMD network of notebook 03 (adapted to the embedded simulated T2w). Your volumes
are aligned, so to *see* a registration we deform the fixed
slices with known random smooth fields, exactly as the training pairs were made
(`make_pairs(..., data=slices)`): the model has to recover those fields from the T1w/T2w
pair, and because we know them we can score it.

For a model adapted to *your* contrast pair rather than the embedded T2w, run the main job with
your files as the target domain: `python -m pemd_tutorial --fixed FIXED.nii.gz --moving MOVING.nii.gz`.
"""
        ),
        code(
            """
pairs = make_pairs("target", n_pairs=len(slices), grid=cfg.grid, control_spacing=cfg.control_spacing,
                   size=cfg.image_size, seed=SEED, data=slices)
p1, p2 = predict(model, pairs)
probs = 0.5 * (p1 + p2)
scores = evaluate_probs(probs, pairs.evaluation_view(), cfg)
print(f"on your slices: accuracy {scores['accuracy']:.3f} (chance {1 / cfg.n_labels:.3f}), EPE {scores['epe']:.2f} px")
assert probs.shape == (len(slices), cfg.n_labels, *cfg.control_shape)
"""
        ),
        md(
            """
## 4. Warping and saving the results

The expected displacement `Σ_k p_k d_k` at the control points is interpolated to a dense field
(`dense_field`), which warps the moving image (`warp`, backward warping:
`warped(x) = moving(x + u(x))`). `save_nifti` writes images and fields back into the voxel grid
and affine of the input files; fields become millimetres in world (RAS+) coordinates, stored as a
5D vector image `(X, Y, Z, 1, 3)`.
"""
        ),
        code(
            """
batch = pairs.batch()
h = w = cfg.image_size
field = dense_field(cfg.grid.expected_displacement(probs), h, w, cfg.control_spacing)  # (N, 2, H, W) px
warped = warp(batch["moving"], field)
i = len(slices) // 2
fig, axes = plt.subplots(1, 4, figsize=(10, 2.6))
for ax, (title, im) in zip(axes[:3], {"fixed (deformed T1w)": batch["fixed"][i], "moving (T2w)": batch["moving"][i],
                                      "moving, warped": warped[i]}.items(), strict=True):
    ax.imshow(im[0], cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
predicted = cfg.grid.expected_displacement(probs[i:i + 1])[0]  # (2, Hc, Wc) px
viz.plot_displacement_field(axes[3], predicted, cfg.control_spacing, batch["fixed"][i], title="predicted")
fig.tight_layout()
"""
        ),
        code(
            """
# NBVAL_CHECK_OUTPUT
paths = {
    "warped": save_nifti(OUT / "moving_warped.nii.gz", warped[:, 0], slices, slice_index=batch["slice_index"]),
    "field": save_nifti(OUT / "displacement_mm.nii.gz", field, slices, slice_index=batch["slice_index"]),
}
for path in paths.values():
    saved = nib.load(path)
    same_grid = np.allclose(saved.affine, img.affine)
    print(f"{path.name}: shape {saved.shape}, same affine as the input: {same_grid}")
    assert saved.shape[:3] == img.shape and same_grid
"""
        ),
        md(
            """
Open `results/notebook04/*.nii.gz` in any NIfTI viewer (ITK-SNAP, 3D Slicer, FSLeyes) on top of
your input files: they share the voxel grid. Slices that were not registered are zero.

**Summary.** Aligned NIfTI volumes → `load_nifti_pair` → slices at the model's size →
`make_pairs(..., data=slices)` or your own pairs → `predict` → `dense_field` / `warp` →
`save_nifti` in the input's geometry.
"""
        ),
    ]
    return cells


BUILDERS = {"01": ("01_projections.ipynb", notebook_01), "02": ("02_cumsum_emd.ipynb", notebook_02),
            "03": ("03_mono_to_multimodal.ipynb", notebook_03),
            "04": ("04_your_own_data.ipynb", notebook_04)}


def update_markdown(name: str, cells: list) -> Path:
    """Replace only the markdown cells of an executed notebook (its code cells and outputs stay)."""
    path = ROOT / "tutorials" / name
    nb = nbformat.read(path, as_version=4)
    if [c.cell_type for c in nb.cells] != [c.cell_type for c in cells]:
        raise SystemExit(f"{name}: the cell structure changed; rebuild and re-run it instead")
    for old, new in zip(nb.cells, cells, strict=True):
        if old.cell_type == "markdown":
            old.source = new.source
        elif old.source != new.source:
            raise SystemExit(f"{name}: a code cell changed; rebuild and re-run it instead")
    nbformat.write(nb, path)
    return path


def main(argv: list[str]) -> None:
    markdown_only = "--markdown-only" in argv
    keys = [a for a in argv if a != "--markdown-only"] or sorted(BUILDERS)
    for key in keys:
        name, build = BUILDERS[key]
        path = update_markdown(name, build()) if markdown_only else write(name, build())
        print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
