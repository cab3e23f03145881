"""The paper's patch experiment: data convention, network size, discrepancies, the run and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data_utils.patches import make_patch_pairs
from pemd_tutorial.emd import projected_emd, sliced_wasserstein_discrepancy
from pemd_tutorial.paper import (
    ConcatNet,
    PaperConfig,
    angles_between,
    mind_patch_baseline,
    paper_discrepancy,
    run_paper_experiment,
)


def test_patch_pairs_are_balanced_and_follow_the_label_convention():
    pairs = make_patch_pairs("test", "t1", 250, deform=0.0, seed=1)
    assert torch.equal(pairs.labels.bincount(minlength=25), torch.full((25,), 10))
    assert pairs.fixed.shape == pairs.moving.shape == (250, 1, 36, 36)
    # fixed(x) shows what moving(x + d) shows: the overlap correlates best at the true shift
    hits = 0
    for k in range(40):
        dx, dy = pairs.grid.displacements()[pairs.labels[k]].round().long().tolist()
        f, m = pairs.fixed[k, 0].numpy(), pairs.moving[k, 0].numpy()

        def corr(sx, sy, f=f, m=m):
            a = f[8:28, 8:28]
            b = m[8 + sy:28 + sy, 8 + sx:28 + sx]
            return np.corrcoef(a.ravel(), b.ravel())[0, 1]

        scores = {(sx, sy): corr(sx, sy) for sx, sy in pairs.grid.displacements().round().long().tolist()}
        hits += max(scores, key=scores.get) == (dx, dy)
    assert hits >= 36


@pytest.mark.parametrize("kwargs, match", [({"moving_contrast": "ct"}, "moving_contrast"),
                                            ({"patch": 35}, "even"), ({"deform": 4.0}, "deform"),
                                            ({"patch": 120}, "does not fit")])
def test_patch_pairs_bad_arguments(kwargs, match):
    args = {"split": "test", "moving_contrast": "t2", "n_pairs": 25, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_patch_pairs(**args)


def test_network_has_the_slides_sizes_and_scales_its_logits():
    cfg = PaperConfig.standard()
    net = ConcatNet(cfg, seed=0)
    counts = net.weight_counts()
    assert 10_000 <= counts["extractor"] <= 16_000 and 60_000 <= counts["classifier"] <= 80_000
    x = torch.rand(3, 1, 36, 36)
    l1, l2 = net(x, x)
    assert l1.shape == l2.shape == (3, 25) and not torch.allclose(l1, l2)  # two different heads
    big = ConcatNet(cfg.replace(logit_scale=1.0), seed=0)
    torch.testing.assert_close(big(x, x)[0] * 0.1, l1)
    with pytest.raises(ValueError, match="multiple of 4"):
        PaperConfig(patch=34)


def test_discrepancies_on_the_5x5_grid():
    grid = PaperConfig().grid
    eye = torch.eye(25, dtype=torch.float64)
    centre = eye[grid.index(0, 0)].expand(4, -1)
    near, far = eye[grid.index(1, 0)].expand(4, -1), eye[grid.index(2, 0)].expand(4, -1)
    angles = angles_between(16)
    assert angles[0] == 0.0 and angles[-1] == 90.0 and len(angles) == 16
    pemd = [float(paper_discrepancy("pemd", centre, q, grid, angles)) for q in (near, far)]
    assert pemd[1] == pytest.approx(2 * pemd[0])
    assert float(paper_discrepancy("pemd", centre, centre, grid)) == 0
    l1 = [float(paper_discrepancy("l1", centre, q, grid)) for q in (near, far)]
    assert l1 == [1.0, 1.0]  # L1 does not see the distance
    p, q = torch.softmax(torch.randn(2, 8, 25, dtype=torch.float64), dim=-1)
    both = paper_discrepancy("pemd+swd", p, q, grid, angles, generator=torch.Generator().manual_seed(0))
    swd = sliced_wasserstein_discrepancy(p, q, 128, torch.Generator().manual_seed(0)) * 25 / 2
    torch.testing.assert_close(both, projected_emd(p, q, (5, 5), angles=angles) + swd)
    with pytest.raises(ValueError, match="'name'"):
        paper_discrepancy("kl", p, q, grid)
    with pytest.raises(ValueError, match=r"\[0, 180\)"):
        paper_discrepancy("pemd", p, q, grid, angles=(0.0, 200.0))


def test_mind_patch_baseline_finds_mono_modal_shifts():
    pairs = make_patch_pairs("test", "t1", 100, seed=2)
    assert float((mind_patch_baseline(pairs) == pairs.labels).float().mean()) > 0.8


def test_tiny_run_and_cli(tmp_path, capsys):
    cfg = PaperConfig.quick(n_train=50, n_val=25, n_test=50, source_steps=3, adapt_steps=2, oracle_steps=3,
                            num_k=1, batch_size=8)
    r = run_paper_experiment(cfg, seeds=(0,), methods=("source", "mcd_pemd16_swd", "oracle"), progress=False)
    col = r["columns"]["t2"]
    assert col["summary"]["identity"]["accuracy"] == pytest.approx(1 / 25)
    assert set(col["per_seed"]) == {"identity", "mind", "source", "mcd_pemd16_swd", "oracle"}
    assert 0 <= col["summary"]["mcd_pemd16_swd"]["source_accuracy"] <= 1
    from pemd_tutorial.__main__ import main

    tiny = {"n_train": 50, "n_val": 25, "n_test": 50, "source_steps": 2, "adapt_steps": 1, "oracle_steps": 2,
            "num_k": 1, "batch_size": 8}
    (tmp_path / "c.json").write_text(json.dumps(tiny))
    out = tmp_path / "out"
    assert main(["--experiment", "paper", "--profile", "quick", "--seeds", "0", "--config-json",
                 str(tmp_path / "c.json"), "--out", str(out), "--no-progress"]) == 0
    saved = json.loads((out / "paper_results.json").read_text())
    assert "networks" not in saved
    assert saved["columns"]["t2"]["summary"]["identity"]["accuracy"] == pytest.approx(0.04)
    assert "| MCD-pEMD (16) + SWD |" in (out / "paper_results.md").read_text()
    assert (out / "paper_accuracy.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        main(["--experiment", "paper", "--profile", "full", "--out", str(out)])


def test_with_the_slides_trick_classifier_1_alone_predicts():
    from pemd_tutorial.paper import patch_accuracy

    pairs = make_patch_pairs("test", "t1", 50, seed=5)
    net = ConcatNet(PaperConfig(supervise_both_heads=False), seed=0)
    with torch.no_grad():  # classifier 2 insists on one wrong label
        net.heads[1][-1].bias.fill_(0.0)
        net.heads[1][-1].bias[(int(pairs.labels[0]) + 1) % 25] = 1e4
    alone = patch_accuracy(net, pairs)
    with torch.no_grad():
        l1, _ = net(pairs.fixed, pairs.moving)
    assert alone == pytest.approx(float((l1.argmax(1) == pairs.labels).float().mean()))
    both = ConcatNet(PaperConfig(supervise_both_heads=True), seed=0)
    both.load_state_dict(net.state_dict())
    wrong = (int(pairs.labels[0]) + 1) % 25  # the mean of both heads follows classifier 2's spike
    assert patch_accuracy(both, pairs) == pytest.approx(float((pairs.labels == wrong).float().mean()))


def test_candidates_hold_the_moving_patch_at_its_label():
    pairs = make_patch_pairs("test", "t2", 30, seed=6)
    for k in range(5):
        cands = pairs.candidates(k)
        assert cands.shape == (25, 36, 36)
        torch.testing.assert_close(cands[pairs.labels[k]], pairs.moving[k, 0])


def test_intermediate_weighted_target_is_the_spin_echo_it_names(monkeypatch):
    from data_utils.embedded import load_embedded, spin_echo

    slices = load_embedded("test", contrasts=("t1",), with_tissues=True)
    image = spin_echo(slices.tissues, 1500.0, 20.0)
    mean = {k: float(image[v > 0.9].mean() / image.max()) for k, v in slices.tissues.items()}
    # milder than T2w: grey and white matter nearly equal, CSF darker (T2w and PD: CSF brightest)
    assert abs(mean["gm"] - mean["wm"]) < 0.05 and mean["csf"] < mean["wm"] - 0.15
    import data_utils.patches as patches

    calls = []

    def recording(*args, **kw):
        calls.append(kw)
        return load_embedded(*args, **kw)

    monkeypatch.setattr(patches, "load_embedded", recording)
    pairs = make_patch_pairs("test", "inter", 25, seed=7)
    assert calls == [{"contrasts": ("t1", "pd"), "pd_tr_te": (1500.0, 20.0)}]
    other = make_patch_pairs("test", "pd", 25, seed=7)  # same geometry, the default PD echo
    assert calls[1] == {"contrasts": ("t1", "pd"), "pd_tr_te": (4000.0, 15.0)}
    assert torch.equal(pairs.labels, other.labels) and torch.equal(pairs.fixed, other.fixed)
    assert not torch.allclose(pairs.moving, other.moving)


@pytest.mark.parametrize("contrasts", [("t1",), ("ct",)])
def test_paper_config_rejects_unknown_target_contrasts(contrasts):
    with pytest.raises(ValueError, match="target_contrasts"):
        PaperConfig.standard(target_contrasts=contrasts)
    assert PaperConfig.standard(target_contrasts=("t2", "inter")).target_contrasts == ("t2", "inter")


def test_lambda_for_takes_the_most_specific_key():
    cfg = PaperConfig.standard(lambdas={"pemd": 0.1, "mcd_pemd16": 0.3, "inter/pemd": 0.2,
                                        "inter/mcd_pemd16": 0.05, "swd": 0.03})
    assert cfg.lambda_for("mcd_pemd2", "t2") == 0.1
    assert cfg.lambda_for("mcd_pemd16", "t2") == 0.3
    assert cfg.lambda_for("mcd_pemd2", "inter") == 0.2
    assert cfg.lambda_for("mcd_pemd16", "inter") == 0.05
    assert cfg.lambda_for("mcd_swd", "inter") == 0.03
    with pytest.raises(ValueError, match="no value for 'mcd_l1'"):
        cfg.lambda_for("mcd_l1", "t2")
    with pytest.raises(ValueError, match="'method'"):
        cfg.lambda_for("oracle", "t2")
    with pytest.raises(ValueError, match="'contrast'"):
        cfg.lambda_for("mcd_swd", "ct")
    # a row's own key is more specific than the contrast's discrepancy key
    cfg = PaperConfig.standard(lambdas={"mcd_pemd16": 0.3, "inter/pemd": 0.2})
    assert cfg.lambda_for("mcd_pemd16", "inter") == 0.3 and cfg.lambda_for("mcd_pemd2", "inter") == 0.2


@pytest.mark.parametrize("lambdas, match", [({"ct/swd": 0.1}, "keys"), ({"mcd_swd2": 0.1}, "keys"),
                                            ({"/swd": 0.1}, "keys"), ({"swd": float("inf")}, "finite"),
                                            ({"oracle": 0.1}, "keys"), ({"swd": -1.0}, ">= 0"),
                                            ({"swd": "0.1"}, ">= 0")])
def test_paper_config_rejects_bad_lambdas(lambdas, match):
    with pytest.raises(ValueError, match=match):
        PaperConfig.standard(lambdas=lambdas)


@pytest.mark.parametrize("contrast, sweep",
                         [("t2", "lambda_paper.json"), ("inter", "lambda_paper_inter.json")])
def test_standard_lambdas_are_the_ones_the_validation_sweep_chose(contrast, sweep):
    from pathlib import Path

    record = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / sweep).read_text())
    assert record["command"].endswith(f"--contrast {contrast}")
    cfg = PaperConfig.standard()
    for row, result in record["rows"].items():
        assert result["chosen"] is not None
        assert cfg.lambda_for(row, contrast) == result["chosen"], row


def test_two_target_columns_share_the_source_network_and_use_their_own_lambdas(monkeypatch):
    import pemd_tutorial.paper as paper

    seen = []
    real = paper.adapt_patches

    def spy(net, source, target, cfg, discrepancy, angles, lam, seed, **kw):
        seen.append(lam)
        return real(net, source, target, cfg, discrepancy, angles, lam, seed, **kw)

    monkeypatch.setattr(paper, "adapt_patches", spy)
    cfg = PaperConfig.quick(n_train=50, n_val=25, n_test=50, source_steps=3, adapt_steps=1, oracle_steps=2,
                            num_k=1, batch_size=8, target_contrasts=("t2", "inter"),
                            lambdas={"t2/mcd_swd": 0.25, "inter/mcd_swd": 0.75})
    both = run_paper_experiment(cfg, seeds=(0,), methods=("source", "mcd_swd"), progress=False)
    assert seen == [0.25, 0.75]
    t2, inter = both["columns"]["t2"], both["columns"]["inter"]
    assert t2["source_accuracy"]["source"] == inter["source_accuracy"]["source"]
    alone = run_paper_experiment(cfg.replace(target_contrasts=("inter",)), seeds=(0,),
                                 methods=("source", "mcd_swd"), progress=False)
    assert alone["columns"]["inter"]["per_seed"] == inter["per_seed"]
    with pytest.raises(ValueError, match="no value for 'mcd_l1'"):  # before any training
        run_paper_experiment(cfg, seeds=(0,), methods=("mcd_l1",), progress=False)
