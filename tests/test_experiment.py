import json
import math

import pytest
import torch
from helpers import tiny_config

import data_utils
from pemd_tutorial.experiment import make_data, run_experiment, summarise
from pemd_tutorial.report import results_markdown


def test_summarise_mean_and_sample_std():
    per_seed = {"a": [{"accuracy": 0.2, "epe": 1.0}, {"accuracy": 0.4, "epe": 3.0}], "b": [{"accuracy": 0.5}]}
    s = summarise(per_seed)
    assert s["a"]["accuracy"] == pytest.approx(0.3)
    assert s["a"]["accuracy_std"] == pytest.approx(math.sqrt(0.02))
    assert s["a"]["epe"] == pytest.approx(2.0) and s["a"]["epe_std"] == pytest.approx(math.sqrt(2.0))
    assert s["b"]["accuracy_std"] == 0.0 and s["b"]["n_seeds"] == 1 and "epe" not in s["b"]


def test_test_pairs_are_identical_across_seeds_and_training_pairs_are_not():
    cfg = tiny_config()
    d0, d1 = make_data(cfg, 0), make_data(cfg, 1)
    b0, b1 = d0.target_test.batch(), d1.target_test.batch()
    for k in ("fixed", "moving", "labels", "displacement"):
        torch.testing.assert_close(b0[k], b1[k], rtol=0, atol=0)
    assert not torch.equal(d0.target_train.batch()["fixed"], d1.target_train.batch()["fixed"])
    assert not torch.equal(d0.source_train.batch()["fixed"], d0.target_train.batch()["fixed"])
    assert "labels" not in d0.target_train.batch()  # hidden in the training view


def test_mind_only_run_writes_every_file(tmp_path):
    r = run_experiment(tiny_config(), methods=("mind",), seeds=(0, 1), out_dir=tmp_path, progress=False)
    assert r["methods"] == ["identity", "mind"]
    rows = r["per_seed"]["mind"]
    assert [row["seed"] for row in rows] == [0, 1] and rows[0]["accuracy"] == rows[1]["accuracy"]
    assert r["summary"]["mind"]["accuracy_std"] == 0.0
    ident = r["summary"]["identity"]
    assert 0.0 <= ident["accuracy"] <= 1.0 and ident["within_one"] >= ident["accuracy"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"]["mind"]["accuracy"] == pytest.approx(r["summary"]["mind"]["accuracy"])
    assert saved["config"]["image_size"] == 16 and "figures_data" not in saved
    assert {"torch", "device", "python"} <= set(saved["machine"]) and saved["wall_time_s"] > 0
    md = (tmp_path / "results.md").read_text()
    assert "| MIND baseline (no training) |" in md and "±" in md
    assert (tmp_path / "accuracy.png").stat().st_size > 1000 and (tmp_path / "examples.png").is_file()


@pytest.mark.slow
def test_all_methods_same_seed_same_metrics_and_target_train_labels_unread(tmp_path, monkeypatch):
    # instrument: the evaluation view of the *target training* pairs may only be opened by the oracle
    opened = []
    real_make_pairs, real_view = data_utils.make_pairs, data_utils.PairDataset.evaluation_view

    def make_pairs(domain="source", split="train", *args, **kw):
        pairs = real_make_pairs(domain, split, *args, **kw)
        pairs._is_target_train = domain == "target" and split == "train"
        return pairs

    def evaluation_view(self):
        if getattr(self, "_is_target_train", False):
            opened.append(True)
        return real_view(self)

    import pemd_tutorial.experiment as experiment

    monkeypatch.setattr(experiment, "make_pairs", make_pairs)  # what make_data calls
    monkeypatch.setattr(data_utils.PairDataset, "evaluation_view", evaluation_view)
    cfg = tiny_config()
    methods = ("source", "mcd_l1", "mcd_swd", "mcd_pemd")
    a = run_experiment(cfg, methods=methods, seeds=(3,), out_dir=None, progress=False)
    assert opened == []  # no method but the oracle reads target training labels
    b = run_experiment(cfg, methods=methods, seeds=(3,), out_dir=tmp_path, progress=False)
    for m in methods:
        for k in ("accuracy", "within_one", "epe", "ncc", "source_accuracy"):
            assert a["per_seed"][m][0][k] == b["per_seed"][m][0][k], (m, k)
    assert set(a["logs"]) == set(methods) and len(a["logs"]["mcd_pemd"]["3"]) == cfg.adapt_steps
    assert (tmp_path / "distributions.png").is_file()
    run_experiment(cfg, methods=("oracle",), seeds=(3,), out_dir=None, progress=False)
    assert opened == [True]


def test_results_markdown_formats_missing_values():
    r = {
        "methods": ["identity"], "method_names": {"identity": "identity"}, "seeds": [0],
        "config": {"radius": 1},
        "chance": 1 / 9, "summary": {"identity": {"accuracy": 0.5, "accuracy_std": 0.0, "epe": float("nan")}},
    }
    md = results_markdown(r)
    assert "| identity | 50.0 ± 0.0 | n/a | n/a | n/a | n/a |" in md


def test_paired_differences_match_seeds():
    from pemd_tutorial.report import paired_differences

    rows = {
        "mcd_pemd": [{"seed": 0, "accuracy": 0.30}, {"seed": 1, "accuracy": 0.40}],
        "mcd_swd": [{"seed": 1, "accuracy": 0.05}, {"seed": 0, "accuracy": 0.10}],  # other order
        "source": [{"seed": 0, "accuracy": 0.0}, {"seed": 1, "accuracy": 0.0}],
    }
    d = paired_differences({"per_seed": rows})
    assert set(d) == {"mcd_pemd - mcd_swd", "mcd_pemd - source"}  # pairs with a missing row are left out
    assert d["mcd_pemd - mcd_swd"]["per_seed"] == pytest.approx({0: 0.20, 1: 0.35})
    assert d["mcd_pemd - mcd_swd"]["mean"] == pytest.approx(0.275)
    assert d["mcd_pemd - mcd_swd"]["std"] == pytest.approx(0.075 * 2**0.5)
    md = results_markdown({"methods": [], "summary": {}, "seeds": [0, 1], "config": {}, "per_seed": rows})
    assert "mcd_pemd − mcd_swd: seed 0: +20.0, seed 1: +35.0; mean +27.5 ± 10.6" in md


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"methods": ("mind", "bogus")}, "methods"),
        ({"methods": ()}, "methods"),
        ({"seeds": ()}, "seeds"),
        ({"seeds": (0, 0)}, "distinct"),
        ({"seeds": (-1,)}, "seeds"),
        ({"fixed": "a.nii.gz"}, "moving"),
    ],
)
def test_run_experiment_bad_arguments(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        run_experiment(tiny_config(), out_dir=tmp_path, progress=False, **kwargs)
    with pytest.raises(TypeError, match="sequence of names"):  # a wrong type is a TypeError
        run_experiment(tiny_config(), methods="mind", out_dir=tmp_path, progress=False)


def test_run_experiment_bad_config_and_missing_file(tmp_path):
    with pytest.raises(TypeError, match=r"run_experiment\(\) 'cfg'"):
        run_experiment({"image_size": 16}, out_dir=None)
    with pytest.raises(FileNotFoundError, match="nope.nii"):
        run_experiment(tiny_config(), out_dir=None, fixed=tmp_path / "nope.nii", moving=tmp_path / "nope.nii")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            run_experiment(tiny_config(device="cuda"), out_dir=None)


def test_method_table_adds_a_row_with_one_entry(tmp_path, monkeypatch):
    """A new row is one METHOD_TABLE entry: its probabilities are scored like every other row."""
    from pemd_tutorial import experiment
    from pemd_tutorial.evaluate import identity_probs

    def run_zero_shift(run):
        hc, wc = run.cfg.control_shape
        n_t, n_s = len(run.data.target_test), len(run.data.source_test)
        return experiment.MethodResult(identity_probs(n_t, run.cfg.grid, hc, wc),
                                       identity_probs(n_s, run.cfg.grid, hc, wc))

    monkeypatch.setitem(experiment.METHOD_TABLE, "zero", experiment.Method("zero shift", run_zero_shift))
    r = run_experiment(tiny_config(), methods=("zero",), seeds=(0,), out_dir=tmp_path, progress=False)
    assert r["methods"] == ["identity", "zero"]
    for key in ("accuracy", "within_one", "epe", "source_accuracy"):
        assert r["per_seed"]["zero"][0][key] == pytest.approx(r["per_seed"]["identity"][0][key])
    assert "| zero shift |" in (tmp_path / "results.md").read_text()


@pytest.mark.slow
def test_fresh_training_pairs_every_step_run_end_to_end_and_reproduce():
    cfg = tiny_config(n_train_pairs=None)
    data = make_data(cfg, seed=0)
    assert isinstance(data.target_train, data_utils.PairSampler)
    assert "labels" not in data.target_train.keys()
    methods = ("source", "mcd_pemd", "oracle")
    a = run_experiment(cfg, methods=methods, seeds=(1,), out_dir=None, progress=False)
    b = run_experiment(cfg, methods=methods, seeds=(1,), out_dir=None, progress=False)
    for m in methods:
        assert a["per_seed"][m][0]["accuracy"] == b["per_seed"][m][0]["accuracy"], m
    with pytest.raises(ValueError, match="n_train_pairs"):
        tiny_config(n_train_pairs=0)


@pytest.mark.slow
def test_inverted_row_is_the_source_network_on_inverted_moving_images():
    from data_utils import invert_foreground
    from pemd_tutorial.evaluate import evaluate_probs, predict
    from pemd_tutorial.experiment import DEFAULT_METHODS, METHOD_TABLE

    assert "inverted" in DEFAULT_METHODS and "mcd_pemd_shuffled" not in DEFAULT_METHODS
    assert "mcd_pemd_shuffled" in METHOD_TABLE  # the opt-in geometry control
    cfg = tiny_config()
    r = run_experiment(cfg, methods=("source", "inverted", "mcd_pemd_shuffled"), seeds=(0,), out_dir=None,
                       progress=False)
    row = r["per_seed"]["inverted"][0]
    assert row["source_accuracy"] == r["per_seed"]["source"][0]["source_accuracy"]
    assert row["train_time_s"] > 0 and row["inference_time_s"] >= 0
    # recompute: the same network (trained again with the same seed) on the inverted test pairs
    from pemd_tutorial.model import RegistrationNet
    from pemd_tutorial.training import train_source

    data = make_data(cfg, 0)
    net = RegistrationNet(cfg)
    train_source(net, data.source_train, cfg, progress=False)
    p1, p2 = predict(net, data.target_test.with_moving(invert_foreground))
    again = evaluate_probs(0.5 * (p1 + p2), data.target_test, cfg)
    assert again["accuracy"] == row["accuracy"]
    assert len(r["logs"]["mcd_pemd_shuffled"]["0"]) == cfg.adapt_steps


@pytest.mark.slow
def test_label_free_alternative_rows_share_source_networks_across_targets_and_reproduce():
    from pemd_tutorial.experiment import DEFAULT_METHODS

    rows = ("source", "randomized", "synth", "synth_heldout", "mind_loss", "mcd_pemd_randomized",
            "mcd_l1_randomized")
    assert not set(rows[1:]) & set(DEFAULT_METHODS)  # opt-in: the default job keeps its budget
    cache: dict = {}
    t2 = run_experiment(tiny_config(test_fold=2), methods=rows, seeds=(0,), out_dir=None, progress=False,
                        network_cache=cache)
    trained = {k[1] for k in cache}  # (experiment, row, variant, configuration, user data)
    assert trained == {"source", "source_randomized", "source_synth", "source_synth_heldout"}
    flair = run_experiment(tiny_config(test_fold=2, target_contrast="flair_lesion"), methods=rows, seeds=(0,),
                           out_dir=None, progress=False, network_cache=cache)
    # source-side networks are the same for both targets (only the held-out arm differs: other order)
    assert len(cache) == 5
    assert flair["per_seed"]["source"][0]["source_accuracy"] == t2["per_seed"]["source"][0]["source_accuracy"]
    assert flair["per_seed"]["randomized"][0]["source_accuracy"] == \
        t2["per_seed"]["randomized"][0]["source_accuracy"]
    again = run_experiment(tiny_config(test_fold=2), methods=rows, seeds=(0,), out_dir=None, progress=False)
    for m in rows:
        assert again["per_seed"][m][0]["accuracy"] == t2["per_seed"][m][0]["accuracy"], m
        counts = t2["per_seed"][m][0]["per_slice"]
        pooled = sum(counts["correct"]) / sum(counts["total"])
        assert pooled == pytest.approx(t2["per_seed"][m][0]["accuracy"])
        assert set(counts["slice_index"]) <= {60, 62, 64, 66, 68, 70, 72, 74}  # fold 2's test block
    assert t2["config"]["test_fold"] == 2


def test_held_out_synthesis_needs_an_embedded_target(tmp_path):
    from pemd_tutorial import experiment

    run = experiment.SeedRun(tiny_config(), 0, None, torch.device("cpu"), {}, {"networks": {}},
                             user_target=True)
    with pytest.raises(ValueError, match="synth_heldout"):
        experiment.SOURCE_TRANSFORMS["source_synth_heldout"](run)
    with pytest.raises(ValueError, match="test_fold"):
        tiny_config(test_fold=5)
    with pytest.raises(ValueError, match="target_contrast"):
        tiny_config(target_contrast="flair_lesions")


def test_paired_differences_get_an_interval_when_rows_have_slice_counts():
    from pemd_tutorial.report import paired_differences

    def row(seed, correct):
        return {"seed": seed, "accuracy": sum(correct) / 40,
                "per_slice": {"slice_index": [0, 1, 2, 3], "correct": correct, "total": [10] * 4}}

    rows = {"mcd_pemd": [row(0, [6, 6, 6, 6]), row(1, [7, 7, 7, 7])],
            "mcd_l1": [row(1, [6, 7, 6, 7]), row(0, [5, 6, 5, 6])]}
    d = paired_differences({"per_seed": rows})["mcd_pemd - mcd_l1"]
    assert d["interval"]["difference"] == pytest.approx(d["mean"]) == pytest.approx(0.05)
    assert d["interval"]["low"] <= 0.05 <= d["interval"]["high"] and not d["interval"]["within_noise"]
    md = results_markdown({"methods": [], "summary": {}, "seeds": [0, 1], "config": {}, "per_seed": rows})
    assert "95 % interval over seeds and test slices [+" in md
    one = paired_differences({"per_seed": {k: [r for r in v if r["seed"] == 0] for k, v in rows.items()}})
    assert "interval" not in one["mcd_pemd - mcd_l1"]  # one seed: no interval
