import copy

import pytest
import torch
from helpers import small_config

from data_utils import make_pairs
from data_utils.grid import LabelGrid
from pemd_tutorial.config import Config
from pemd_tutorial.discrepancies import scaled_discrepancy
from pemd_tutorial.evaluate import label_accuracy, predict
from pemd_tutorial.loop import make_optimizers
from pemd_tutorial.model import RegistrationNet
from pemd_tutorial.training import adapt, mcd_step_a, mcd_step_b, mcd_step_c, train_oracle, train_source


def tiny(**kw) -> Config:
    """The shared 32 px configuration with a faster learning rate and λ 0.5 for every discrepancy."""
    return small_config(**{"lr": 3e-3, "num_k": 2, "val_every": 2, "checkpoint_every": 2,
                           "lambdas": {"l1": 0.5, "swd": 0.5, "pemd": 0.5}, **kw})


@pytest.fixture(scope="module")
def data():
    grid = LabelGrid(2, 2.0)
    kw = dict(grid=grid, control_spacing=4, size=32)
    return {
        "source": make_pairs("source", "train", n_pairs=8, seed=0, **kw),
        "target": make_pairs("target", "train", n_pairs=8, seed=1, **kw),
        "val": make_pairs("target", "val", n_pairs=4, seed=2, **kw).evaluation_view(),
    }


def _params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _batch(pairs, keys, n=4):
    b = pairs.batch(list(range(n)))
    return {k: b[k] for k in keys}


# ------------------------------------------------------------------------------------------ discrepancy


def test_discrepancy_normalisation():
    grid = LabelGrid(2, 2.0)
    eye = torch.eye(grid.n_labels)
    centre = eye[grid.index(0, 0)].expand(3, -1)
    for name in ("l1", "swd", "pemd"):
        assert float(scaled_discrepancy(name, centre, centre, grid)) == pytest.approx(0.0, abs=1e-7)
    # total variation of disjoint one-hot rows is 1
    neighbour = eye[grid.index(1, 0)].expand(3, -1)
    assert float(scaled_discrepancy("l1", centre, neighbour, grid)) == pytest.approx(1.0)
    # projected EMD in label steps grows with the distance between the peaks; L1 does not
    far = [eye[grid.index(k, 0)].expand(3, -1) for k in (1, 2)]
    pemd = [float(scaled_discrepancy("pemd", centre, f, grid)) for f in far]
    l1 = [float(scaled_discrepancy("l1", centre, f, grid)) for f in far]
    assert pemd[1] == pytest.approx(2 * pemd[0]) and pemd[0] > 0.5
    assert l1[0] == pytest.approx(l1[1])


def test_discrepancy_errors():
    grid = LabelGrid(2, 2.0)
    p = torch.full((3, 25), 1 / 25)
    with pytest.raises(ValueError, match=r"scaled_discrepancy\(\) 'name'"):
        scaled_discrepancy("kl", p, p, grid)
    with pytest.raises(ValueError, match=r"\(M, 25\)"):
        scaled_discrepancy("l1", p[:, :9], p[:, :9], grid)


def test_label_accuracy_counts_only_valid_points():
    probs = torch.zeros(1, 3, 1, 2)
    probs[0, 1, 0, 0] = 1  # point 0 -> label 1, point 1 -> label 0 (all zero: argmax 0)
    labels = torch.tensor([[[1, 2]]])
    assert label_accuracy(probs, labels, torch.tensor([[[True, True]]])) == 0.5
    assert label_accuracy(probs, labels, torch.tensor([[[True, False]]])) == 1.0


# ------------------------------------------------------------------------------------------ predict


def test_predict_shapes_probabilities_and_batch_independence(data):
    cfg = tiny()
    net = RegistrationNet(cfg)
    net.train()
    p1, p2 = predict(net, data["target"], batch_size=3)
    assert p1.shape == p2.shape == (8, 25, 8, 8) and p1.device.type == "cpu"
    torch.testing.assert_close(p1.sum(1), torch.ones(8, 8, 8))
    q1, _ = predict(net, data["target"], batch_size=64)
    torch.testing.assert_close(p1, q1, rtol=0, atol=1e-6)
    assert net.training  # mode restored
    with pytest.raises(ValueError, match="'batch_size'"):
        predict(net, data["target"], batch_size=0)


# ------------------------------------------------------------------------------------------ MCD steps


def test_step_b_freezes_generator_and_step_c_freezes_heads(data):
    cfg = tiny()
    net = RegistrationNet(cfg)
    opts = make_optimizers(net, 1e-2)
    bs = _batch(data["source"], ("fixed", "moving", "labels", "mask", "inside"))
    bt = _batch(data["target"], ("fixed", "moving", "mask"))
    grid = cfg.grid

    def d_fn(p, q):
        return scaled_discrepancy("pemd", p, q, grid)

    mcd_step_a(net, opts, bs)  # Adam state for every parameter
    g0, h0 = _params(net.generator), _params(net.head1) + _params(net.head2)
    mcd_step_b(net, opts, bs, bt, d_fn, lam=1.0)
    g1, h1 = _params(net.generator), _params(net.head1) + _params(net.head2)
    assert _same(g0, g1), "step B changed G"
    assert not _same(h0, h1), "step B did not train the heads"
    mcd_step_c(net, opts, bt, d_fn, num_k=2)
    g2, h2 = _params(net.generator), _params(net.head1) + _params(net.head2)
    assert _same(h1, h2), "step C changed the heads"
    assert not _same(g1, g2), "step C did not train G"
    assert all(p.requires_grad for p in net.parameters())


def test_step_b_raises_the_discrepancy_and_step_c_lowers_it(data):
    cfg = tiny()
    net = RegistrationNet(cfg)
    opts = make_optimizers(net, 1e-2)
    bs = _batch(data["source"], ("fixed", "moving", "labels", "mask", "inside"))
    bt = _batch(data["target"], ("fixed", "moving", "mask"))

    def d_fn(p, q):
        return scaled_discrepancy("l1", p, q, cfg.grid)

    _, d0 = mcd_step_b(net, opts, bs, bt, d_fn, lam=10.0)
    for _ in range(5):
        _, d1 = mcd_step_b(net, opts, bs, bt, d_fn, lam=10.0)
    assert d1 > d0
    first = mcd_step_c(net, opts, bt, d_fn, num_k=1)
    last = mcd_step_c(net, opts, bt, d_fn, num_k=8)
    assert last < first


# ------------------------------------------------------------------------------------------ loops


@pytest.mark.slow
def test_source_training_overfits_a_few_pairs(data):
    cfg = tiny(lr=1e-2, batch_size=4)
    net = RegistrationNet(cfg)
    few = make_pairs("source", "train", n_pairs=4, grid=cfg.grid, control_spacing=4, size=32, seed=3)
    log = train_source(net, few, cfg, steps=150, progress=False)  # the smoothed cost needs > 80
    p1, p2 = predict(net, few)
    b = few.batch()
    acc = label_accuracy(p1 + p2, b["labels"], b["mask"] & b["inside"])
    chance = 1 / cfg.n_labels
    assert acc > 0.85, acc
    assert acc > 10 * chance
    assert log[-1]["source_ce"] < log[0]["source_ce"] / 2
    assert [r["step"] for r in log] == list(range(1, 151))


def test_same_seed_identical_results_and_logs(data):
    cfg = tiny()
    runs = []
    for _ in range(2):
        net = RegistrationNet(cfg)
        log = train_source(net, data["source"], cfg, steps=3, val=data["val"], progress=False)
        log += adapt(net, data["source"], data["target"], cfg, discrepancy="swd", steps=2, val=data["val"],
                     progress=False)
        runs.append((_params(net), log))
    assert _same(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert runs[0][1][1]["val_acc"] is not None and runs[0][1][0]["val_acc"] is None
    other = RegistrationNet(tiny(seed=1))
    train_source(other, data["source"], tiny(seed=1), steps=3, progress=False)
    assert not _same(runs[0][0], _params(other))


class _Killer:
    """Wraps a dataset; raises KeyboardInterrupt at the n-th ``batch`` call (a killed run)."""

    def __init__(self, pairs, at: int):
        self.pairs, self.at, self.calls = pairs, at, 0

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        return self.pairs[i]

    def batch(self, indices=None):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.pairs.batch(indices)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["source", "adapt_swd", "oracle"])
def test_killed_run_resumes_bit_identical(data, tmp_path, phase):
    cfg = tiny(checkpoint_every=2)
    steps = 5

    def run(model, source, ckpt, resume):
        if phase == "source":
            return train_source(model, source, cfg, steps=steps, val=data["val"], checkpoint_dir=ckpt,
                                resume=resume, progress=False)
        if phase == "oracle":
            return train_oracle(model, source, cfg, steps=steps, checkpoint_dir=ckpt, resume=resume,
                                progress=False)
        return adapt(model, source, data["target"], cfg, discrepancy="swd", steps=steps, val=data["val"],
                     checkpoint_dir=ckpt, resume=resume, progress=False)

    labelled = data["source"] if phase != "oracle" else data["val"]
    ref = RegistrationNet(cfg)
    ref_log = run(ref, labelled, tmp_path / "a", False)

    killed = RegistrationNet(cfg)
    with pytest.raises(KeyboardInterrupt):
        run(killed, _Killer(labelled, at=4 if phase != "adapt_swd" else 4), tmp_path / "b", False)
    assert not list((tmp_path / "b").glob("*.tmp"))
    torch.manual_seed(999)  # the global RNG state is restored from the checkpoint too
    resumed = RegistrationNet(tiny(seed=7))  # other weights: all of them come from the checkpoint
    log = run(resumed, labelled, tmp_path / "b", True)
    assert _same(_params(ref), _params(resumed))
    assert log == ref_log
    # resuming a finished run is a no-op that returns its log
    again = RegistrationNet(cfg)
    assert run(again, labelled, tmp_path / "b", True) == ref_log
    assert _same(_params(ref), _params(again))


def test_resume_refuses_another_runs_checkpoint(data, tmp_path):
    cfg = tiny()
    net = RegistrationNet(cfg)
    adapt(net, data["source"], data["target"], cfg, discrepancy="l1", lam=0.5, steps=2,
          checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="another run"):
        adapt(net, data["source"], data["target"], cfg, discrepancy="l1", lam=0.25, steps=2,
              checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="another run"):
        adapt(net, data["source"], data["target"], tiny(batch_size=2), discrepancy="l1", lam=0.5, steps=2,
              checkpoint_dir=tmp_path, resume=True, progress=False)
    # more steps, another device string or other lambdas of other discrepancies may resume
    log = adapt(net, data["source"], data["target"], tiny(lambdas={"l1": 0.5}), discrepancy="l1", lam=0.5,
                steps=3, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert [r["step"] for r in log] == [1, 2, 3]


class _Recording(dict):
    """A dict that records which keys were read."""

    def __init__(self, d, seen):
        super().__init__(d)
        self.seen = seen

    def __getitem__(self, k):
        self.seen.add(k)
        return super().__getitem__(k)


class _InstrumentedTarget:
    """Target pairs whose items *include* the ground truth, recording every key that is read."""

    def __init__(self, target):
        self.full = target.evaluation_view()
        self.seen: set[str] = set()

    def __len__(self):
        return len(self.full)

    def __getitem__(self, i):
        return _Recording(self.full[i], self.seen)

    def batch(self, indices=None):
        return _Recording(self.full.batch(indices), self.seen)

    def evaluation_view(self):
        raise AssertionError("adapt() called evaluation_view() on the target pairs")


def test_adapt_never_reads_target_labels(data, monkeypatch):
    cfg = tiny()
    target = make_pairs("target", "train", n_pairs=8, grid=cfg.grid, control_spacing=4, size=32, seed=1)
    inst = _InstrumentedTarget(target)
    net = RegistrationNet(cfg)
    adapt(net, data["source"], inst, cfg, discrepancy="pemd", steps=2, progress=False)
    assert inst.seen == {"fixed", "moving", "mask"}
    # and with the real dataset whose evaluation_view is booby-trapped
    monkeypatch.setattr(type(target), "evaluation_view", lambda self: (_ for _ in ()).throw(AssertionError))
    adapt(net, data["source"], target, cfg, discrepancy="l1", steps=1, progress=False)


def test_oracle_needs_labels_source_needs_labels(data):
    cfg = tiny()
    net = RegistrationNet(cfg)
    with pytest.raises(ValueError, match="evaluation_view"):
        train_oracle(net, data["target"], cfg, steps=1, progress=False)
    log = train_oracle(net, data["val"], cfg, steps=2, progress=False)
    assert log[-1]["phase"] == "oracle" and "target_ce" in log[-1]


def test_bad_options_raise(data):
    cfg = tiny()
    net = RegistrationNet(cfg)
    src, tgt = data["source"], data["target"]
    with pytest.raises(ValueError, match=r"adapt\(\) 'discrepancy'"):
        adapt(net, src, tgt, cfg, discrepancy="kl", progress=False)
    with pytest.raises(ValueError, match="'lam'"):
        adapt(net, src, tgt, cfg, lam=-1.0, progress=False)
    with pytest.raises(ValueError, match="'steps'"):
        train_source(net, src, cfg, steps=-3, progress=False)
    with pytest.raises(ValueError, match="'source'"):
        train_source(net, [], cfg, progress=False)
    with pytest.raises(TypeError, match=r"train_source\(\) 'model' must be a two-headed network"):
        train_source(torch.nn.Linear(2, 2), src, cfg, progress=False)
    with pytest.raises(ValueError, match="label grid"):
        train_source(RegistrationNet(tiny(radius=3)), src, cfg, progress=False)
    with pytest.raises(ValueError, match="no value"):
        adapt(net, src, tgt, tiny(lambdas={"l1": 1.0}), discrepancy="pemd", progress=False)


def test_adapt_starts_from_a_copy_without_touching_the_original(data):
    cfg = tiny()
    base = RegistrationNet(cfg)
    before = _params(base)
    net = copy.deepcopy(base)
    log = adapt(net, data["source"], data["target"], cfg, discrepancy="pemd", steps=2, progress=False)
    assert _same(before, _params(base)) and not _same(before, _params(net))
    assert {"source_ce", "train_acc", "disc_b", "discrepancy", "lam", "val_acc"} <= set(log[0])
    assert log[0]["phase"] == "adapt_pemd" and log[0]["lam"] == 0.5


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_runs_on_cuda_and_matches_cpu_closely(data):
    cfg = tiny()
    cpu, gpu = RegistrationNet(cfg), RegistrationNet(cfg).cuda()
    log_c = adapt(cpu, data["source"], data["target"], cfg, discrepancy="pemd", steps=2, progress=False)
    log_g = adapt(gpu, data["source"], data["target"], cfg, discrepancy="pemd", steps=2, progress=False)
    assert next(gpu.parameters()).device.type == "cuda"
    assert log_g[0]["source_ce"] == pytest.approx(log_c[0]["source_ce"], rel=1e-3)
    p1, _ = predict(gpu, data["target"])
    assert p1.device.type == "cpu"


def test_gradient_logging_measures_the_discrepancy_alone_and_changes_no_result(data):
    cfg = tiny()
    base = RegistrationNet(cfg)
    plain, logged = copy.deepcopy(base), copy.deepcopy(base)
    a = adapt(plain, data["source"], data["target"], cfg, discrepancy="l1", steps=2, progress=False)
    b = adapt(logged, data["source"], data["target"], cfg, discrepancy="l1", steps=2, progress=False,
              log_gradients=True)
    assert _same(_params(plain), _params(logged))  # the extra backward pass changes no step
    assert a[-1]["discrepancy"] == b[-1]["discrepancy"]
    assert all(r["grad_heads_disc"] > 0 and r["grad_generator_disc"] > 0 for r in b)
    assert "grad_heads_disc" not in a[0]
    # with lambda 0 the discrepancy sends nothing into the heads in step B
    zero = adapt(copy.deepcopy(base), data["source"], data["target"], cfg, discrepancy="l1", lam=0.0, steps=1,
                 progress=False, log_gradients=True)
    assert zero[0]["grad_heads_disc"] == 0.0


def test_text_progress_prints_one_line_per_phase_and_changes_nothing(data, capsys):
    cfg = tiny()
    a, b = RegistrationNet(cfg), RegistrationNet(cfg)
    log_a = train_source(a, data["source"], cfg, steps=3, val=data["val"], progress="text")
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("source: 3 steps in ")
    assert "validation accuracy" in printed[0]
    log_b = train_source(b, data["source"], cfg, steps=3, val=data["val"], progress=False)
    assert capsys.readouterr().out == ""
    assert [r["source_ce"] for r in log_a] == [r["source_ce"] for r in log_b]
    assert _same(_params(a), _params(b))
    with pytest.raises(ValueError, match="'progress'"):
        train_source(b, data["source"], cfg, steps=1, progress="bars")


# ------------------------------------------------------------------------------------------ MIND loss


def test_mind_ssd_loss_is_lowest_at_the_true_displacement_and_has_gradients(data):
    from pemd_tutorial.training import mind_ssd_loss

    cfg = tiny()
    net = RegistrationNet(cfg)
    batch = data["source"].batch(list(range(4)))
    loss = mind_ssd_loss(net, batch, cfg.control_spacing)
    loss.backward()
    assert loss.item() > 0 and any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())

    class Oracle(torch.nn.Module):  # puts all mass on the true label, or on zero displacement
        def __init__(self, labels, grid):
            super().__init__()
            self.grid, self.labels, self.scale = grid, labels, torch.nn.Parameter(torch.ones(()))

        def forward(self, fixed, moving):
            logits = torch.nn.functional.one_hot(self.labels, self.grid.n_labels).permute(0, 3, 1, 2) * 50.0
            return logits.float() * self.scale, logits.float() * self.scale

    right = mind_ssd_loss(Oracle(batch["labels"], cfg.grid), batch, cfg.control_spacing)
    zero = torch.full_like(batch["labels"], cfg.grid.index(0, 0))
    wrong = mind_ssd_loss(Oracle(zero, cfg.grid), batch, cfg.control_spacing)
    assert right.item() < wrong.item()


def test_train_similarity_lowers_the_loss_reads_no_target_label_and_reproduces(data):
    from pemd_tutorial.training import train_similarity

    cfg = tiny()
    target = make_pairs("target", "train", n_pairs=8, grid=cfg.grid, control_spacing=4, size=32, seed=1)
    inst = _InstrumentedTarget(target)
    torch.manual_seed(0)
    a = RegistrationNet(cfg)
    b = copy.deepcopy(a)
    log = train_similarity(a, data["source"], inst, cfg, steps=12, progress=False)
    assert inst.seen == {"fixed", "moving", "mask"}
    assert [r["phase"] for r in log] == ["mind_loss"] * 12 and all("mind_ssd" in r for r in log)
    first, last = sum(r["mind_ssd"] for r in log[:3]), sum(r["mind_ssd"] for r in log[-3:])
    assert last < first
    train_similarity(b, data["source"], target, cfg, steps=12, progress=False)
    assert _same(_params(a), _params(b))
    with pytest.raises(ValueError, match="weight"):
        train_similarity(a, data["source"], target, cfg, steps=1, weight=0, progress=False)


def test_train_source_phase_name_changes_the_batches_and_is_checked(data):
    cfg = tiny()
    torch.manual_seed(0)
    a = RegistrationNet(cfg)
    b = copy.deepcopy(a)
    train_source(a, data["source"], cfg, steps=2, progress=False)
    train_source(b, data["source"], cfg, steps=2, progress=False, phase="source_randomized")
    assert not _same(_params(a), _params(b))
    with pytest.raises(ValueError, match="phase"):
        train_source(a, data["source"], cfg, steps=1, progress=False, phase="a/b")
