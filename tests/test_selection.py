"""Label-free model selection (pemd_tutorial.selection), the inverted-contrast baseline, the FLAIR-like
target, the shuffled-grid control and the rescaled-SWD control."""

from __future__ import annotations

import math

import pytest
import torch

from data_utils import LabelGrid, evaluation_pairs, inversion_recovery, invert_foreground, load_embedded
from data_utils.patches import make_patch_pairs
from pemd_tutorial.config import Config
from pemd_tutorial.discrepancies import SWD_RESCALE, scaled_discrepancy, shuffled_labels
from pemd_tutorial.evaluate import identity_probs
from pemd_tutorial.selection import SCORES, choose_lambda, output_scores, registration_scores


def _one_hot(labels: torch.Tensor, n: int) -> torch.Tensor:
    """``(N, Hc, Wc)`` labels -> ``(N, n, Hc, Wc)`` one-hot probabilities."""
    return torch.nn.functional.one_hot(labels, n).permute(0, 3, 1, 2).float()


# ------------------------------------------------------------------ choose_lambda


def test_choose_lambda_applies_the_collapse_rule_then_the_score():
    table = {0.1: {"source_val_acc": 0.60, "mind_ssd": 0.20, "nmi": 1.02, "im": 1.0, "snd": 3.0},
             0.3: {"source_val_acc": 0.55, "mind_ssd": 0.15, "nmi": 1.04, "im": 2.0, "snd": 2.0},
             1.0: {"source_val_acc": 0.40, "mind_ssd": 0.10, "nmi": 1.05, "im": 3.0, "snd": 4.0}}
    # 1.0 is best on every score but lowers the source accuracy by 21 points: not eligible
    assert choose_lambda(table, "mind_ssd", 0.61) == 0.3
    assert choose_lambda(table, "nmi", 0.61) == 0.3
    assert choose_lambda(table, "im", 0.61) == 0.3
    assert choose_lambda(table, "snd", 0.61) == 0.1  # higher is better for SND too
    assert choose_lambda(table, "rank_sum", 0.61) == 0.3
    assert choose_lambda(table, "mind_ssd", 0.61, max_source_drop=0.25) == 1.0
    assert choose_lambda(table, "mind_ssd", 0.61, max_source_drop=0.05) == 0.1


def test_choose_lambda_ties_go_to_the_smaller_weight_and_rank_sum_adds_ranks():
    table = {lam: {"source_val_acc": 0.6, "mind_ssd": 0.2, "nmi": 1.03} for lam in (1.0, 0.3, 0.1)}
    assert choose_lambda(table, "mind_ssd", 0.6) == 0.1
    # MIND-SSD prefers 0.3, NMI prefers 1.0 and ranks 0.3 second: rank sums 0.1: 2+2, 0.3: 0+1, 1.0: 1+0
    table = {0.1: {"source_val_acc": 0.6, "mind_ssd": 0.30, "nmi": 1.01},
             0.3: {"source_val_acc": 0.6, "mind_ssd": 0.10, "nmi": 1.03},
             1.0: {"source_val_acc": 0.6, "mind_ssd": 0.20, "nmi": 1.04}}
    assert choose_lambda(table, "rank_sum", 0.6) == 0.3


def test_choose_lambda_names_the_discrepancy_when_every_lambda_collapses():
    table = {0.1: {"source_val_acc": 0.3, "mind_ssd": 0.1}, 1.0: {"source_val_acc": 0.2, "mind_ssd": 0.1}}
    with pytest.raises(ValueError, match="every λ of pemd"):
        choose_lambda(table, "mind_ssd", 0.6, name="pemd")
    with pytest.raises(ValueError, match="'score'"):
        choose_lambda(table, "accuracy", 0.6)
    with pytest.raises(ValueError, match="empty"):
        choose_lambda({}, "nmi", 0.6)
    assert set(SCORES) == {"mind_ssd", "nmi", "im", "snd", "rank_sum"}


# ------------------------------------------------------------------ the scores


def test_output_scores_reward_confident_diverse_predictions():
    mask = torch.ones(4, 2, 2, dtype=torch.bool)
    uniform = torch.full((4, 9, 2, 2), 1 / 9)
    labels = torch.arange(16).remainder(9).view(4, 2, 2)
    confident = _one_hot(labels, 9)
    collapsed = _one_hot(torch.zeros(4, 2, 2, dtype=torch.long), 9)
    u, c, k = output_scores(uniform, mask), output_scores(confident, mask), output_scores(collapsed, mask)
    assert u["im"] == pytest.approx(0.0, abs=1e-9) and k["im"] == pytest.approx(0.0, abs=1e-9)
    assert c["im"] > 1.5  # the entropy of the mean of 16 rows over 9 labels, minus 0
    assert all(math.isfinite(v) for v in (*u.values(), *c.values(), *k.values()))
    with pytest.raises(ValueError, match="at least 2"):
        output_scores(uniform, torch.zeros(4, 2, 2, dtype=torch.bool))


def test_true_labels_look_more_similar_than_no_registration_on_dense_pairs():
    cfg = Config.quick()
    pairs = evaluation_pairs("target", "val", 8, grid=cfg.grid, control_spacing=cfg.control_spacing,
                             size=cfg.image_size)
    truth = pairs.evaluation_view().batch()["labels"]
    hc, wc = cfg.control_shape
    right = registration_scores(_one_hot(truth, cfg.grid.n_labels), pairs)
    none = registration_scores(identity_probs(len(pairs), cfg.grid, hc, wc), pairs)
    assert right["mind_ssd"] < none["mind_ssd"]
    assert right["nmi"] > none["nmi"]


def test_true_labels_look_more_similar_than_no_registration_on_patches():
    pairs = make_patch_pairs("val", "t2", 50, seed=0)
    n = pairs.grid.n_labels
    right = registration_scores(_one_hot(pairs.labels.view(-1, 1, 1), n), pairs.without_labels())
    zero = torch.full((len(pairs), 1, 1), pairs.grid.index(0, 0), dtype=torch.long)
    none = registration_scores(_one_hot(zero, n), pairs.without_labels())
    assert right["mind_ssd"] < 0.8 * none["mind_ssd"]
    assert right["nmi"] > none["nmi"]


# ------------------------------------------------------------------ baselines and targets


def test_invert_foreground_maps_the_foreground_and_keeps_the_background_zero():
    x = torch.tensor([0.0, 0.01, 0.2, 0.5, 1.0]).view(1, 1, 1, 5)
    y = invert_foreground(x)
    assert y.flatten().tolist() == pytest.approx([0.0, 0.0, 0.8, 0.5, 0.0])
    with pytest.raises(ValueError, match="threshold"):
        invert_foreground(x, threshold=1.0)
    with pytest.raises(ValueError, match="image"):
        invert_foreground(torch.zeros(5))


def test_with_moving_replaces_only_the_moving_images_and_keeps_labels_hidden():
    cfg = Config.quick()
    pairs = evaluation_pairs("target", "val", 4, grid=cfg.grid, control_spacing=4, size=48)
    inv = pairs.with_moving(invert_foreground)
    assert "labels" not in inv.batch() and "labels" in inv.evaluation_view().batch()
    assert torch.equal(inv.batch()["fixed"], pairs.batch()["fixed"])
    assert not torch.equal(inv.batch()["moving"], pairs.batch()["moving"])
    with pytest.raises(ValueError, match="shape"):
        pairs.with_moving(lambda m: m[:1])
    patches = make_patch_pairs("val", "t2", 5, seed=1)
    pinv = patches.with_moving(invert_foreground)
    assert torch.equal(pinv.labels, patches.labels)
    assert pinv.moving_regions.shape == patches.moving_regions.shape


def test_flair_like_target_nulls_csf_and_is_selectable_in_the_main_job():
    ones, zeros = torch.ones(1), torch.zeros(1)
    signal = {t: float(inversion_recovery({"csf": ones * (t == "csf"), "gm": ones * (t == "gm"),
                                           "wm": ones * (t == "wm")}, 9000.0, 1700.0, 100.0))
              for t in ("csf", "gm", "wm")}
    assert signal["csf"] < 0.01 and signal["gm"] > signal["wm"] > 0.15
    with pytest.raises(ValueError, match="'ti'"):
        inversion_recovery({"csf": zeros}, 1000.0, 2000.0, 10.0)
    flair = load_embedded("val", contrasts=("t1", "flair"), size=32)
    assert flair.images["flair"].max() == pytest.approx(1.0, abs=0.05)
    from pemd_tutorial.experiment import make_data

    cfg = Config.quick(target_contrast="flair", n_train_pairs=None)
    data = make_data(cfg, 0)
    assert "FLAIR" in data.description
    with pytest.raises(ValueError, match="target_contrast"):
        Config.quick(target_contrast="t3")


def test_shuffled_grid_control_is_the_pemd_of_permuted_labels():
    grid = LabelGrid(2, 1.0)
    perm = shuffled_labels(grid.n_labels)
    assert sorted(perm.tolist()) == list(range(grid.n_labels)) and not torch.equal(perm, torch.arange(25))
    p = torch.softmax(torch.randn(6, 25, generator=torch.Generator().manual_seed(0)), dim=1)
    q = torch.softmax(torch.randn(6, 25, generator=torch.Generator().manual_seed(1)), dim=1)
    control = scaled_discrepancy("pemd_shuffled", p, q, grid)
    assert float(control) == pytest.approx(float(scaled_discrepancy("pemd", p[:, perm], q[:, perm], grid)))
    assert float(control) != pytest.approx(float(scaled_discrepancy("pemd", p, q, grid)))
    cfg = Config.quick()
    assert cfg.lam("pemd_shuffled") == cfg.lam("pemd")
    assert Config.quick(lambdas={**cfg.lambdas, "pemd_shuffled": 0.1}).lam("pemd_shuffled") == 0.1


def test_rescaled_swd_control_keeps_step_b_and_scales_step_c():
    grid = LabelGrid(2, 1.0)
    p = torch.softmax(torch.randn(6, 25, generator=torch.Generator().manual_seed(0)), dim=1).requires_grad_()
    q = torch.softmax(torch.randn(6, 25, generator=torch.Generator().manual_seed(1)), dim=1)

    def swd(name):
        return scaled_discrepancy(name, p, q, grid, generator=torch.Generator().manual_seed(5))

    control, plain = swd("swd_rescaled"), swd("swd")
    assert float(control) == pytest.approx(SWD_RESCALE * float(plain), rel=1e-6)
    cfg = Config.quick()
    # step B minimises -λ·D: the control's λ·D (value and gradient) is MCD-SWD's
    assert float(cfg.lam("swd_rescaled") * control) == pytest.approx(float(cfg.lam("swd") * plain), rel=1e-6)
    (g_control,) = torch.autograd.grad(control, p)
    (g_plain,) = torch.autograd.grad(plain, p)
    # step C minimises D itself: the gradient is SWD_RESCALE times larger
    assert torch.allclose(g_control, SWD_RESCALE * g_plain, rtol=1e-5, atol=1e-12)
    assert Config.quick(lambdas={**cfg.lambdas, "swd_rescaled": 0.2}).lam("swd_rescaled") == 0.2


def test_select_lambda_adapts_each_weight_scores_it_and_warns_about_collapse(recwarn):
    from data_utils import PairSampler
    from pemd_tutorial.model import RegistrationNet
    from pemd_tutorial.selection import select_lambda
    from pemd_tutorial.training import adapt, train_source

    cfg = Config(image_size=16, radius=1, label_step=2.0, control_spacing=4, channels=(4,), head_channels=4,
                 batch_size=2, source_steps=3, adapt_steps=2, num_k=1, n_projections=8, val_every=0,
                 checkpoint_every=1)
    kw = dict(grid=cfg.grid, control_spacing=4, size=16)
    source, target = PairSampler("source", "train", **kw), PairSampler("target", "train", **kw)
    target_val = evaluation_pairs("target", "val", 4, **kw)
    source_val = evaluation_pairs("source", "val", 4, **kw).evaluation_view()
    net = RegistrationNet(cfg)
    train_source(net, source, cfg, progress=False)
    before = [p.detach().clone() for p in net.parameters()]
    # max_source_drop=-1 makes every run "collapse": an error that names the discrepancy, and warnings
    with pytest.raises(ValueError, match="every λ of l1"):
        select_lambda(net, source, target, target_val, source_val, cfg, discrepancy="l1",
                      lambdas=(0.1, 1.0), max_source_drop=-1.0)
    assert len([w for w in recwarn if "collapsed" in str(w.message)]) == 2
    choice = select_lambda(net, source, target, target_val, source_val, cfg, discrepancy="l1",
                           lambdas=(0.1, 1.0), checkpoints=(1, 2), max_source_drop=1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))  # input untouched
    assert choice.lam in (0.1, 1.0) and choice.steps in (1, 2) and set(choice.table) == {0.1, 1.0}
    runs = [(lam, k) for lam in choice.table for k in (1, 2)]
    assert (choice.lam, choice.steps) == min(runs, key=lambda c: (choice.table[c[0]][c[1]]["mind_ssd"], c))
    # the returned network is the one adapted with the chosen weight for the chosen iterations,
    # identical to an uninterrupted adaptation of the same length
    import copy

    again = copy.deepcopy(net)
    adapt(again, source, target, cfg, discrepancy="l1", lam=choice.lam, steps=choice.steps,
          phase=f"select_{choice.lam:g}", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                  choice.model.state_dict().values(), strict=True))
