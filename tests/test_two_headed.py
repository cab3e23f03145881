"""The seam of two-headed networks and the one experiment driver.

* :class:`pemd_tutorial.model.TwoHeadedNet`: what the engine needs of a network. A third network
  that satisfies it trains and adapts without any edit to the engine.
* :func:`pemd_tutorial.evaluate.predict` with ``combine="mean"`` and
  :func:`pemd_tutorial.evaluate.pairs_accuracy`: the package's prediction and its accuracy.
* :func:`pemd_tutorial.experiment.drive`: one loop for the main job and the patch experiment.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from data_utils import make_pairs
from pemd_tutorial.config import Config, PaperConfig
from pemd_tutorial.evaluate import heads_mean, identity_probs, label_accuracy, pairs_accuracy, predict
from pemd_tutorial.experiment import MAIN_JOB, Experiment, Method, MethodResult, drive, run_identity
from pemd_tutorial.model import ConcatNet, RegistrationNet, TwoHeadedNet
from pemd_tutorial.paper import PAPER_EXPERIMENT
from pemd_tutorial.training import adapt, train_source

CFG = dict(image_size=16, radius=1, label_step=2.0, control_spacing=4, channels=(4,), head_channels=4,
           n_train_pairs=4, n_val_pairs=2, n_test_pairs=3, batch_size=2, source_steps=2, adapt_steps=1,
           oracle_steps=2, num_k=1, n_projections=8, val_every=1, checkpoint_every=1, device="cpu")


def _pairs(cfg: Config, domain: str = "source", n: int = 4):
    return make_pairs(domain, "train", n, seed=3, grid=cfg.grid, control_spacing=cfg.control_spacing,
                      size=cfg.image_size)


class PixelNet(nn.Module):
    """A third network, unknown to the package: a 1x1 convolution as G, the two heads on the
    difference image. It only satisfies :class:`TwoHeadedNet`."""

    config_class = Config
    dense = True

    def __init__(self, cfg: Config):
        super().__init__()
        self.config, self.grid, self.control_spacing = cfg, cfg.grid, cfg.control_spacing
        torch.manual_seed(cfg.seed)
        self.g = nn.Conv2d(2, 4, 1)
        self.h1 = nn.Conv2d(4, cfg.grid.n_labels, 1)
        self.h2 = nn.Conv2d(4, cfg.grid.n_labels, 1)

    def cost(self, fixed, moving):
        return nn.functional.avg_pool2d(self.g(torch.cat([fixed, moving], 1)), self.control_spacing)

    def classify(self, cost):
        return self.h1(cost), self.h2(cost)

    def forward(self, fixed, moving):
        return self.classify(self.cost(fixed, moving))

    def generator_parameters(self):
        return list(self.g.parameters())

    def head_parameters(self):
        return [*self.h1.parameters(), *self.h2.parameters()]


def test_both_networks_and_a_third_satisfy_the_seam():
    cfg = Config(**CFG)
    assert isinstance(RegistrationNet(cfg), TwoHeadedNet) and RegistrationNet.dense
    assert isinstance(ConcatNet(PaperConfig.quick()), TwoHeadedNet) and not ConcatNet.dense
    assert isinstance(PixelNet(cfg), TwoHeadedNet)
    assert not isinstance(nn.Linear(2, 2), TwoHeadedNet)


def test_a_third_network_trains_and_adapts_without_edits_to_the_engine():
    cfg = Config(**CFG)
    net = PixelNet(cfg)
    before = [p.detach().clone() for p in net.parameters()]
    source = _pairs(cfg)
    log = train_source(net, source, cfg, progress=False)
    assert len(log) == cfg.source_steps
    heads = [p.detach().clone() for p in net.head_parameters()]
    adapt(net, source, _pairs(cfg, "target"), cfg, discrepancy="pemd", progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(heads, net.head_parameters(), strict=True))
    with pytest.raises(TypeError, match="two-headed"):
        train_source(nn.Linear(2, 2), source, cfg, progress=False)


def test_predict_combines_the_heads_in_one_place():
    cfg = Config(**CFG)
    net = RegistrationNet(cfg)
    pairs = _pairs(cfg).evaluation_view()
    p1, p2 = predict(net, pairs)
    mean = predict(net, pairs, combine="mean")
    assert torch.equal(mean, heads_mean(p1, p2)) and torch.equal(mean, 0.5 * (p1 + p2))
    assert torch.allclose(mean.sum(dim=1), torch.ones(()))
    with pytest.raises(ValueError, match="'combine'"):
        predict(net, pairs, combine="max")
    b = pairs.batch()
    exact = label_accuracy(p1 + p2, b["labels"], b["mask"] & b["inside"])
    assert pairs_accuracy(net, pairs) == pairs_accuracy(mean, pairs) == exact
    with pytest.raises(ValueError, match="one shape"):
        heads_mean(p1, p2[:1])
    with pytest.raises(ValueError, match="do not fit"):
        pairs_accuracy(mean[:1], pairs)


def test_one_driver_runs_any_experiment_specification():
    """A specification with its own data, rows and score runs through the same loop as both experiments."""
    cfg = Config(**CFG)
    calls = []

    def data(cfg_s, seed, target, user_slices):
        calls.append((seed, target))
        return MAIN_JOB.make_data(cfg_s, seed, target, user_slices)

    def uniform(run):
        n_t, n_s = len(run.data.target_test), len(run.data.source_test)
        hc, wc = cfg.control_shape
        flat = torch.full((n_t, cfg.grid.n_labels, hc, wc), 1.0 / cfg.grid.n_labels)
        return MethodResult(flat, identity_probs(n_s, cfg.grid, hc, wc))

    spec = Experiment(function="toy", config_class=Config,
                      references={"identity": Method("none", run_identity)},
                      rows={"uniform": Method("uniform", uniform),
                            "extra": Method("x", uniform, opt_in=True)},
                      targets=lambda c: ("t2", "flair"), make_data=data, new_network=RegistrationNet,
                      score=lambda tp, sp, d, c: {"accuracy": pairs_accuracy(tp, d.target_test)},
                      target_only_fields=())
    assert spec.defaults() == ("uniform",)
    done = drive(spec, cfg, spec.defaults(), (0, 1), progress=False)
    assert calls == [(0, "t2"), (1, "t2"), (0, "flair"), (1, "flair")]
    assert done["methods"] == ["identity", "uniform"] and set(done["targets"]) == {"t2", "flair"}
    rows = done["targets"]["t2"]["per_seed"]["uniform"]
    assert [r["seed"] for r in rows] == [0, 1] and rows[0]["inference_time_s"] is None
    with pytest.raises(ValueError, match=r"toy\(\) 'methods' entries must be in"):
        drive(spec, cfg, ("nope",), (0,), progress=False)
    with pytest.raises(TypeError, match=r"toy\(\) 'cfg' must be a Config"):
        drive(spec, object(), ("uniform",), (0,), progress=False)
    with pytest.raises(ValueError, match="'resume' needs a 'checkpoint_dir'"):
        drive(spec, cfg, ("uniform",), (0,), resume=True)


def test_both_experiments_are_specifications_of_the_driver():
    assert MAIN_JOB.function == "run_experiment" and PAPER_EXPERIMENT.function == "run_paper_experiment"
    # the inverted patch row comes with the source-only row and cannot be asked for alone
    assert PAPER_EXPERIMENT.select(("source",)) == ("inverted", "source")
    with pytest.raises(ValueError, match="run_paper_experiment"):
        PAPER_EXPERIMENT.select(("inverted",))
    assert MAIN_JOB.select(("oracle", "source")) == ("source", "oracle")  # table order
    assert "inverted" in MAIN_JOB.defaults() and "mind_loss" not in MAIN_JOB.defaults()
