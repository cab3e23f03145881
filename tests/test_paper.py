"""The paper's patch experiment: data convention, network size, discrepancies, the run and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data_utils.patches import PatchSampler, make_patch_pairs
from pemd_tutorial.discrepancies import scaled_discrepancy
from pemd_tutorial.emd import projected_emd, sliced_wasserstein_discrepancy
from pemd_tutorial.paper import (
    ConcatNet,
    PaperConfig,
    angles_between,
    mind_patch_baseline,
    patch_accuracy,
    run_paper_experiment,
    training_pairs,
)
from pemd_tutorial.training import adapt, mcd_step_b, train_oracle, train_source


def tiny_cfg(**kw) -> PaperConfig:
    base = dict(n_val=25, n_test=50, source_steps=3, adapt_steps=2, oracle_steps=3, num_k=1, batch_size=8,
                val_every=2, checkpoint_every=2)
    return PaperConfig.quick(**{**base, **kw})


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
    with pytest.raises(ValueError, match="n_pairs"):
        make_patch_pairs("test", "t2", 0)


@pytest.mark.slow
def test_sampler_draws_fresh_reproducible_pairs_inside_the_brain():
    sampler = PatchSampler("train", "t2")
    g = torch.Generator().manual_seed(0)
    a, b = sampler.draw_batch(32, g), sampler.draw_batch(32, g)
    assert set(a) == {"fixed", "moving", "mask", "labels", "inside"}
    assert a["fixed"].shape == (32, 1, 36, 36) and a["labels"].shape == (32, 1, 1)
    assert not torch.equal(a["fixed"], b["fixed"])  # a new batch every call
    again = sampler.draw_batch(32, torch.Generator().manual_seed(0))
    assert all(torch.equal(a[k], again[k]) for k in a)  # the generator state fixes the batch
    # make_patch_pairs is the sampler with a seeded generator
    pairs = make_patch_pairs("train", "t2", 50, seed=3)
    same = sampler.draw(50, torch.Generator().manual_seed(3))
    assert torch.equal(pairs.fixed, same.fixed) and torch.equal(pairs.labels, same.labels)
    # every patch centre lies in the brain mask (the patches are not background)
    big = sampler.draw(2000, torch.Generator().manual_seed(1))
    assert float(big.fixed.mean(dim=(1, 2, 3)).min()) > 0.05
    unlabelled = PatchSampler("train", "t2", labelled=False).draw_batch(8, g)
    assert set(unlabelled) == {"fixed", "moving", "mask"}
    with pytest.raises(TypeError, match="generator"):
        sampler.draw(4, 0)


def test_fixed_pairs_without_labels_hide_them():
    pairs = make_patch_pairs("test", "t2", 25, seed=1)
    hidden = pairs.without_labels()
    assert set(hidden.batch()) == {"fixed", "moving", "mask"} and len(hidden) == 25
    with pytest.raises(ValueError, match="no labels"):
        hidden.evaluation_view()
    assert pairs.batch([3, 4])["labels"].view(-1).tolist() == pairs.labels[3:5].tolist()


def test_network_has_the_slides_sizes_and_scales_its_logits():
    cfg = PaperConfig.standard()
    net = ConcatNet(cfg, seed=0)
    counts = net.weight_counts()
    assert 10_000 <= counts["extractor"] <= 16_000 and 60_000 <= counts["classifier"] <= 80_000
    x = torch.rand(3, 1, 36, 36)
    l1, l2 = net(x, x)
    assert l1.shape == l2.shape == (3, 25, 1, 1) and not torch.allclose(l1, l2)  # two different heads
    small = ConcatNet(cfg.replace(logit_scale=0.1), seed=0)
    torch.testing.assert_close(small(x, x)[0], l1 * 0.1)
    with pytest.raises(ValueError, match="multiple of 4"):
        PaperConfig(patch=34)
    with pytest.raises(ValueError, match="shape"):
        net(x[..., :32, :32], x[..., :32, :32])


def test_building_the_network_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ConcatNet(PaperConfig(), seed=7)
    assert torch.equal(torch.rand(3), expected)
    a, b = ConcatNet(PaperConfig(seed=1)), ConcatNet(PaperConfig(), seed=1)
    assert _equal(a.state_dict().values(), b.state_dict().values())


def test_discrepancies_on_the_5x5_grid():
    grid = PaperConfig().grid
    eye = torch.eye(25, dtype=torch.float64)
    centre = eye[grid.index(0, 0)].expand(4, -1)
    near, far = eye[grid.index(1, 0)].expand(4, -1), eye[grid.index(2, 0)].expand(4, -1)
    angles = angles_between(16)
    assert angles[0] == 0.0 and angles[-1] == 90.0 and len(angles) == 16
    pemd = [float(scaled_discrepancy("pemd", centre, q, grid, angles=angles)) for q in (near, far)]
    assert pemd[1] == pytest.approx(2 * pemd[0])
    assert float(scaled_discrepancy("pemd", centre, centre, grid, angles=angles)) == 0
    l1 = [float(scaled_discrepancy("l1", centre, q, grid)) for q in (near, far)]
    assert l1 == [1.0, 1.0]  # L1 does not see the distance
    p, q = torch.softmax(torch.randn(2, 8, 25, dtype=torch.float64), dim=-1)
    g = torch.Generator().manual_seed(0)
    both = scaled_discrepancy("pemd+swd", p, q, grid, angles=angles, generator=g)
    swd = sliced_wasserstein_discrepancy(p, q, 128, torch.Generator().manual_seed(0)) * 25 / 2
    torch.testing.assert_close(both, projected_emd(p, q, (5, 5), angles=angles) + swd)
    # the two angles of the 2-angle row see less than 16 angles do on a diagonal shift
    diag = eye[grid.index(1, 1)].expand(4, -1)
    two = float(scaled_discrepancy("pemd", centre, diag, grid, angles=angles_between(2)))
    many = float(scaled_discrepancy("pemd", centre, diag, grid, angles=angles))
    assert two == pytest.approx(1.0) and many != pytest.approx(two)


def test_mind_patch_baseline_finds_mono_modal_shifts():
    pairs = make_patch_pairs("test", "t1", 100, seed=2)
    assert float((mind_patch_baseline(pairs) == pairs.labels).float().mean()) > 0.8


@pytest.mark.slow
def test_tiny_run_and_cli(tmp_path, capsys):
    cfg = tiny_cfg()
    r = run_paper_experiment(cfg, seeds=(0,), methods=("source", "mcd_pemd16_swd", "oracle"), progress=False)
    col = r["columns"]["t2"]
    assert col["summary"]["identity"]["accuracy"] == pytest.approx(1 / 25)
    assert set(col["per_seed"]) == {"identity", "mind", "inverted", "source", "mcd_pemd16_swd", "oracle"}
    from data_utils import invert_foreground
    from pemd_tutorial.paper import evaluation_set

    inverted = evaluation_set(cfg, "test", "t2").with_moving(invert_foreground)
    assert col["per_seed"]["inverted"] == [patch_accuracy(r["networks"]["t2/source"], inverted)]
    assert r["methods"][:3] == ["identity", "mind", "inverted"]
    assert 0 <= col["summary"]["mcd_pemd16_swd"]["source_accuracy"] <= 1
    from pemd_tutorial.__main__ import main

    tiny = {"n_val": 25, "n_test": 50, "source_steps": 2, "adapt_steps": 1, "oracle_steps": 2,
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


@pytest.mark.slow
def test_candidates_hold_the_moving_patch_at_its_label():
    pairs = make_patch_pairs("test", "t2", 30, seed=6)
    for k in range(8):
        cands = pairs.candidates(k)
        assert cands.shape == (25, 36, 36)
        # the candidates are cut before the intensity changes: the one at the label is the moving
        # patch up to its gamma, bias and noise, and it matches best
        corr = [float(torch.corrcoef(torch.stack([c.flatten(), pairs.moving[k, 0].flatten()]))[0, 1])
                for c in cands]
        assert max(range(25), key=corr.__getitem__) == int(pairs.labels[k]) and max(corr) > 0.9


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


def test_two_target_columns_share_the_source_network_and_use_their_own_lambdas(monkeypatch):
    import pemd_tutorial.experiment as experiment

    seen = []
    real = experiment.adapt

    def spy(*args, **kw):
        seen.append(kw["lam"])
        return real(*args, **kw)

    monkeypatch.setattr(experiment, "adapt", spy)  # the one driver's adaptation call
    cfg = tiny_cfg(adapt_steps=1, oracle_steps=2, target_contrasts=("t2", "inter"),
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


# ------------------------------------------------------------------ the shared engine on patches


def _state(net) -> list[torch.Tensor]:
    return [v.detach().clone() for v in net.state_dict().values()]


def _equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_step_b_leaves_the_extractor_bit_identical_on_patches():
    from pemd_tutorial.loop import make_optimizers

    cfg = tiny_cfg()
    net = ConcatNet(cfg)
    g = torch.Generator().manual_seed(0)
    source = training_pairs(cfg, "t1", labelled=True).draw_batch(8, g)
    target = training_pairs(cfg, "t2", labelled=False).draw_batch(8, g)
    g_before = [p.detach().clone() for p in net.generator_parameters()]
    f_before = [p.detach().clone() for p in net.head_parameters()]

    def disc(p, q):
        return scaled_discrepancy("pemd+swd", p, q, cfg.grid, generator=torch.Generator().manual_seed(0))

    mcd_step_b(net, make_optimizers(net, cfg.lr), source, target, disc, 0.3)
    assert _equal(g_before, net.generator_parameters())
    assert not _equal(f_before, net.head_parameters())


@pytest.mark.slow
def test_same_seed_same_result_and_a_killed_run_resumes_bit_identical(tmp_path):
    cfg = tiny_cfg(source_steps=4)
    source = training_pairs(cfg, "t1", labelled=True)
    a, b = ConcatNet(cfg), ConcatNet(cfg)
    log_a = train_source(a, source, cfg, progress=False)
    log_b = train_source(b, source, cfg, progress=False)
    assert log_a == log_b and _equal(_state(a), _state(b))
    c = ConcatNet(cfg)
    train_source(c, source, cfg, steps=2, checkpoint_dir=tmp_path, progress=False)  # "killed" at step 2
    log_c = train_source(c, source, cfg, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert log_c == log_a and _equal(_state(c), _state(a))
    # adaptation too, with fresh target pairs
    target = training_pairs(cfg, "t2", labelled=False)
    kw = dict(discrepancy="pemd+swd", lam=0.3, angles=angles_between(16), phase="mcd_pemd16_swd",
              progress=False)
    d, e = ConcatNet(cfg), ConcatNet(cfg)
    log_d = adapt(d, source, target, cfg, **kw)
    adapt(e, source, target, cfg, steps=1, checkpoint_dir=tmp_path, **kw)
    log_e = adapt(e, source, target, cfg, checkpoint_dir=tmp_path, resume=True, **kw)
    assert log_d == log_e and _equal(_state(d), _state(e))


@pytest.mark.slow
def test_adaptation_never_reads_target_labels_on_patches():
    cfg = tiny_cfg(n_train=16)
    pool = training_pairs(cfg, "t2", labelled=False)
    assert pool.labels is None  # a label read would fail
    net = ConcatNet(cfg)
    log = adapt(net, training_pairs(cfg, "t1", labelled=True), pool, cfg, discrepancy="l1", lam=0.1,
                progress=False)
    assert len(log) == cfg.adapt_steps
    with pytest.raises(ValueError, match="needs labelled pairs"):
        train_oracle(net, pool, cfg, progress=False)


def test_a_checkpoint_of_the_other_experiment_is_refused(tmp_path):
    from data_utils import make_pairs
    from pemd_tutorial.config import Config
    from pemd_tutorial.model import RegistrationNet

    dense = Config(image_size=32, radius=2, label_step=2.0, control_spacing=4, channels=(4, 8),
                   head_channels=8, batch_size=4, checkpoint_every=1)
    pairs = make_pairs("source", "train", n_pairs=4, grid=dense.grid, control_spacing=4, size=32, seed=0)
    train_source(RegistrationNet(dense), pairs, dense, steps=1, checkpoint_dir=tmp_path, progress=False)
    cfg = tiny_cfg()
    with pytest.raises(ValueError, match="holds a RegistrationNet .*main job"):
        train_source(ConcatNet(cfg), training_pairs(cfg, "t1", labelled=True), cfg, checkpoint_dir=tmp_path,
                     resume=True, progress=False)
    with pytest.raises(TypeError, match="PaperConfig for a ConcatNet"):
        train_source(ConcatNet(cfg), pairs, dense, progress=False)


def test_patch_accuracy_is_the_mean_of_both_heads():
    pairs = make_patch_pairs("test", "t1", 50, seed=5)
    net = ConcatNet(PaperConfig(), seed=0)
    with torch.no_grad():  # classifier 2 insists on one wrong label: the mean of both heads follows it
        net.heads[1][-1].bias.fill_(0.0)
        net.heads[1][-1].bias[(int(pairs.labels[0]) + 1) % 25] = 1e4
    wrong = (int(pairs.labels[0]) + 1) % 25
    assert patch_accuracy(net, pairs) == pytest.approx(float((pairs.labels == wrong).float().mean()))


@pytest.mark.slow
def test_cli_honours_methods_device_and_checkpoints(tmp_path, capsys):
    from pemd_tutorial.__main__ import main

    tiny = {"n_val": 25, "n_test": 25, "source_steps": 2, "adapt_steps": 1, "oracle_steps": 2, "num_k": 1,
            "batch_size": 8, "checkpoint_every": 1}
    (tmp_path / "c.json").write_text(json.dumps(tiny))
    out, ck = tmp_path / "out", tmp_path / "ck"
    argv = ["paper", "--profile", "quick", "--seeds", "0", "--config-json", str(tmp_path / "c.json"),
            "--methods", "source", "mcd_l1", "--device", "cpu", "--out", str(out), "--no-progress",
            "--checkpoint-dir", str(ck)]
    assert main(argv) == 0
    saved = json.loads((out / "paper_results.json").read_text())
    assert saved["methods"] == ["identity", "mind", "inverted", "source", "mcd_l1"]
    assert saved["config"]["device"] == "cpu"
    assert (ck / "seed0" / "source.pt").is_file() and (ck / "seed0" / "t2" / "mcd_l1.pt").is_file()
    assert main([*argv, "--resume"]) == 0
    again = json.loads((out / "paper_results.json").read_text())["columns"]["t2"]
    for key in ("per_seed", "source_accuracy", "curves"):  # resumed from the last checkpoints: the same
        assert again[key] == saved["columns"]["t2"][key]
    for bad, message in ((["--methods", "mcd_pemd"], "--methods"), (["--fixed", "a.nii"], "--fixed")):
        with pytest.raises(SystemExit):
            main(["paper", "--profile", "quick", "--out", str(out), *bad])
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_train": 16, "batch_size": 32}, ValueError, "'n_train' must be >= 32"),
    ({"source_steps": -1}, ValueError, "'source_steps'"),
    ({"adapt_steps": 1.5}, TypeError, "'adapt_steps' must be an integer"),
    ({"logit_scale": 0.0}, ValueError, "'logit_scale'"),
    ({"deform": 4.0}, ValueError, "'deform'"),
])
def test_paper_config_names_what_cannot_work(kwargs, error, match):
    with pytest.raises(error, match=match):
        PaperConfig(**kwargs)
