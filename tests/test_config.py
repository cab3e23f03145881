"""Tests of pemd_tutorial.config (both configurations, the λ tables) and of the registries: one table
for each thing a contributor adds (a discrepancy, a row, a contrast), read by everything else."""

import json
from pathlib import Path

import pytest
import torch
from helpers import small_config as tiny

from data_utils import CONTRAST_NAMES, make_pairs
from data_utils.embedded import EMBEDDED_CONTRASTS
from data_utils.patches import PATCH_CONTRASTS
from pemd_tutorial.config import (
    DENSE_TARGET_CONTRASTS,
    PAPER_METHODS,
    PAPER_REFERENCE_NAMES,
    PAPER_TARGET_CONTRASTS,
    Config,
    PaperConfig,
)
from pemd_tutorial.discrepancies import SCALED_DISCREPANCIES, scaled_discrepancy
from pemd_tutorial.experiment import METHOD_TABLE
from pemd_tutorial.model import RegistrationNet
from pemd_tutorial.pretrained import PRETRAINED_NAMES
from pemd_tutorial.training import adapt


def test_config_round_trip_and_profiles():
    for cfg in (Config(), Config.quick(), Config.full(device="cpu"), tiny(lambdas={"pemd": 0.5})):
        d = cfg.to_dict()
        assert Config.from_dict(json.loads(json.dumps(d))) == cfg
    q = Config.quick(seed=5)
    assert q.seed == 5 and q.device == "cpu"
    assert q.grid.n_labels == 81 and q.control_shape == (12, 12)
    assert Config() == Config.quick()


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(control_spacing=5), "control_spacing"),
        (dict(radius=8, label_step=2.0), "radius"),
        (dict(image_size=36, channels=(4, 8, 8, 8)), "feature stride"),
        (dict(radius=0), "radius"),
        (dict(label_step=-1.0), "label_step"),
        (dict(channels=()), "channels"),
        (dict(lambdas={"kl": 1.0}), "lambdas"),
        (dict(lambdas={"pemd": -1.0}), "lambdas"),
        (dict(metric="cos"), "metric"),
        (dict(batch_size=0), "batch_size"),
        (dict(num_k=0), "num_k"),
        (dict(lr=0.0), "lr"),
        (dict(device="nonsense"), "device"),
        (dict(max_displacement=-2.0), "max_displacement"),
    ],
)
def test_config_rejects_impossible_values(changes, match):
    with pytest.raises(ValueError, match=match):
        tiny(**changes)


def test_config_from_dict_unknown_field_and_lam():
    with pytest.raises(ValueError, match="unknown fields"):
        Config.from_dict({"image_sise": 64})
    with pytest.raises(ValueError, match="'discrepancy'"):
        tiny().lam("kl")
    with pytest.raises(ValueError, match="no value"):
        tiny(lambdas={"pemd": 1.0}).lam("swd")


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


def test_paper_standard_lambdas_are_the_ones_the_sweeps_chose():
    results = Path(__file__).parents[1] / "benchmarks" / "results"
    cfg = PaperConfig.standard()
    # T2w: the label-free choice (MIND-SSD of the patches the predictions align)
    record = json.loads((results / "lambda_paper_labelfree.json").read_text())
    assert "--contrast t2" in record["command"]
    for row, result in record["rows"].items():
        assert cfg.lambda_for(row, "t2") == result["label_free"]["mind_ssd"], row
    # the opt-in intermediate-weighted column: the same label-free choice on its own patches
    record = json.loads((results / "lambda_paper_inter_labelfree.json").read_text())
    assert "--contrast inter" in record["command"]
    for row, result in record["rows"].items():
        assert cfg.lambda_for(row, "inter") == result["label_free"]["mind_ssd"], row


def test_every_discrepancy_name_comes_from_the_one_table():
    cfg = tiny(lambdas={name: 1.0 for name in SCALED_DISCREPANCIES})
    grid = cfg.grid
    net = RegistrationNet(cfg)
    pairs = make_pairs("source", "train", n_pairs=4, grid=grid, control_spacing=cfg.control_spacing,
                       size=cfg.image_size, seed=0)
    p = torch.softmax(torch.randn(6, grid.n_labels, generator=torch.Generator().manual_seed(0)), 1)
    q = torch.softmax(torch.randn(6, grid.n_labels, generator=torch.Generator().manual_seed(1)), 1)
    for name, entry in SCALED_DISCREPANCIES.items():
        assert tiny(lambdas={name: 0.5}).lam(name) == 0.5  # Config accepts every table name as a λ key
        value = scaled_discrepancy(name, p, q, grid, generator=torch.Generator().manual_seed(0))
        assert value.dim() == 0 and float(value) > 0, name
        # adapt() takes angles exactly where the table says so (no step is run: steps=0)
        if entry.takes_angles:
            adapt(net, pairs, pairs, cfg, discrepancy=name, angles=(0.0,), steps=0, progress=False)
        else:
            with pytest.raises(ValueError, match="'angles'"):
                adapt(net, pairs, pairs, cfg, discrepancy=name, angles=(0.0,), steps=0, progress=False)


def test_display_names_and_contrasts_have_one_table_each():
    # every contrast of both experiments has its display name in the one table
    assert set(EMBEDDED_CONTRASTS) | set(PATCH_CONTRASTS) == set(CONTRAST_NAMES)
    # every target contrast is one the data can make
    assert set(DENSE_TARGET_CONTRASTS) <= set(EMBEDDED_CONTRASTS)
    assert set(PAPER_TARGET_CONTRASTS) <= set(PATCH_CONTRASTS)
    # the shipped networks are rows of the main job, so --save-models of the main job rebuilds them
    assert set(PRETRAINED_NAMES) <= set(METHOD_TABLE)
    # the paper experiment's rows and its reference rows do not collide
    assert not set(PAPER_METHODS) & set(PAPER_REFERENCE_NAMES)
    names = [v[0] for v in PAPER_METHODS.values()] + list(PAPER_REFERENCE_NAMES.values())
    assert len(names) == len(set(names))


def test_configurations_are_frozen_and_replace_makes_validated_copies():
    """Both configuration classes are frozen: results and model files record a configuration that
    cannot change after the fact; replace() is the way to a changed copy, and it validates."""
    import dataclasses

    cfg = Config.quick()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        PaperConfig.quick().seed = 3
    assert cfg.replace(seed=3).seed == 3 and cfg.seed == 0
    with pytest.raises(ValueError, match="image_size"):
        cfg.replace(image_size=0)
    assert isinstance(Config(channels=[4, 8]).channels, tuple)  # normalised once, in __post_init__


def test_the_settings_are_split_by_job():
    from pemd_tutorial.config import lambdas, profiles, published

    assert Config is profiles.Config and PaperConfig is profiles.PaperConfig
    assert Config.standard().lambdas == lambdas.STANDARD_LAMBDAS
    assert set(published.PAPER_ACCURACY) == set(published.SLIDES_COUNTERPARTS)
    from pemd_tutorial.experiment import METHODS
    from pemd_tutorial.paper import PAPER_EXPERIMENT

    for rows in published.SLIDES_COUNTERPARTS.values():
        assert rows["main_job"] in ("identity", *METHODS)
        assert rows["patch_experiment"] in ("identity", *PAPER_EXPERIMENT.rows)
