"""Tests of pemd_tutorial.pretrained: model files and the shipped networks."""

import json
import shutil

import pytest
import torch

from pemd_tutorial import pretrained
from pemd_tutorial.config import Config
from pemd_tutorial.model import RegistrationNet
from pemd_tutorial.pretrained import (
    PRETRAINED_NAMES,
    load_model,
    load_pretrained,
    pretrained_manifest,
    save_model,
)

TINY = Config(image_size=32, radius=2, channels=(4, 8), head_channels=8, seed=3)


def test_round_trip_gives_the_same_network(tmp_path):
    net = RegistrationNet(TINY)
    with torch.no_grad():  # weights that differ from a fresh network of the same seed
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_model(net, tmp_path / "sub" / "net.pt", metadata={"method": "x", "seed": 3})
    back = load_model(path)
    assert back.config.to_dict() == TINY.to_dict()
    assert back.metadata == {"method": "x", "seed": 3}
    assert not back.training
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    net.eval()
    with torch.no_grad():
        for a, b in zip(net(x, x), back(x, x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_load_refuses_another_architecture(tmp_path):
    path = save_model(RegistrationNet(TINY), tmp_path / "net.pt")
    load_model(path, TINY.replace(seed=7, lr=0.5))  # training settings may differ
    with pytest.raises(ValueError, match=r"radius=2 \(expected 3\)"):
        load_model(path, TINY.replace(radius=3))
    with pytest.raises(ValueError, match="image_size=32"):
        load_model(path, TINY.replace(image_size=48, control_spacing=4))
    with pytest.raises(ValueError, match="head_channels"):
        load_model(path, TINY.replace(head_channels=16))


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt"):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a pemd-tutorial model file"):
        load_model(other)
    with pytest.raises(TypeError, match="'config'"):
        load_model(other, config={"radius": 2})


def test_weights_that_do_not_fit_are_refused(tmp_path):
    path = save_model(RegistrationNet(TINY), tmp_path / "net.pt")
    state = torch.load(path, weights_only=True)
    state["state_dict"].pop(next(iter(state["state_dict"])))
    torch.save(state, path)
    with pytest.raises(ValueError, match="do not fit"):
        load_model(path)


def test_save_errors(tmp_path):
    with pytest.raises(TypeError, match="'model'"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "x.pt")
    with pytest.raises(TypeError, match="'metadata'"):
        save_model(RegistrationNet(TINY), tmp_path / "x.pt", metadata=[1])
    with pytest.raises(ValueError, match="JSON"):
        save_model(RegistrationNet(TINY), tmp_path / "x.pt", metadata={"a": object()})
    assert not (tmp_path / "x.pt").exists()


def test_unknown_pretrained_name():
    with pytest.raises(ValueError, match="mcd_pemd"):
        load_pretrained("pemd")


def test_damaged_pretrained_file_is_refused(tmp_path, monkeypatch):
    src = pretrained.pretrained_dir()
    dst = tmp_path / "pretrained"
    shutil.copytree(src, dst)
    entry = json.loads((dst / "manifest.json").read_text())["networks"]["source"]
    (dst / entry["file"]).write_bytes((dst / entry["file"]).read_bytes() + b"\0")
    monkeypatch.setattr(pretrained, "pretrained_dir", lambda: dst)
    with pytest.raises(ValueError, match="sha256"):
        load_pretrained("source")
    (dst / entry["file"]).unlink()
    with pytest.raises(FileNotFoundError, match=entry["file"]):
        load_pretrained("source")


def test_shipped_networks_are_small_and_listed():
    manifest = pretrained_manifest()
    assert set(manifest["networks"]) == set(PRETRAINED_NAMES)
    folder = pretrained.pretrained_dir()
    total = sum((folder / e["file"]).stat().st_size for e in manifest["networks"].values())
    assert total <= 2 * 1024 * 1024
    cfg = Config.from_dict(manifest["config"])
    # the standard profile, seed 0
    assert cfg.to_dict() == Config.standard(seed=0, device=cfg.device).to_dict()


@pytest.mark.parametrize("name", PRETRAINED_NAMES)
def test_shipped_network_reproduces_its_manifest_metrics(name):
    # rebuild the main job's target test pairs and score the shipped network on them
    from pemd_tutorial.evaluate import evaluate_model
    from pemd_tutorial.experiment import make_data

    manifest = pretrained_manifest()
    model = load_pretrained(name)
    cfg = Config.from_dict(manifest["config"])
    data = make_data(cfg, 0)
    got = evaluate_model(model, data.target_test, cfg)
    want = manifest["networks"][name]["metrics"]
    # bit-identical with the torch version and CPU instruction set that built them; elsewhere the
    # convolutions may round differently, which can flip an arg-max here and there: 0.5 points at most
    same_platform = (manifest["machine"]["torch"], manifest["machine"]["cpu_capability"]) == (
        torch.__version__, torch.backends.cpu.get_cpu_capability())
    tol = 1e-9 if same_platform else 0.005
    for key in ("accuracy", "within_one"):
        assert abs(got[key] - want[key]) <= tol, (key, got[key], want[key])
    assert abs(got["epe"] - want["epe"]) <= (1e-6 if same_platform else 0.05)


def test_patch_network_round_trips_and_refuses_a_dense_config(tmp_path):
    from pemd_tutorial.config import PaperConfig
    from pemd_tutorial.model import ConcatNet

    cfg = PaperConfig(seed=2, logit_scale=0.5)
    net = ConcatNet(cfg)
    path = save_model(net, tmp_path / "patch.pt", metadata={"method": "source"})
    back = load_model(path, cfg.replace(lr=0.1))  # training settings may differ
    assert isinstance(back, ConcatNet) and back.config.to_dict() == cfg.to_dict()
    x = torch.rand(3, 1, 36, 36, generator=torch.Generator().manual_seed(0))
    net.eval()
    with torch.no_grad():
        for a, b in zip(net(x, x), back(x, x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"logit_scale=0.5 \(expected 1.0\)"):
        load_model(path, cfg.replace(logit_scale=1.0))
    with pytest.raises(TypeError, match="holds a ConcatNet"):
        load_model(path, TINY)


@pytest.mark.slow
def test_shipped_patch_networks_are_listed_and_reproduce_their_manifest():
    from pemd_tutorial.config import PAPER_METHODS, PaperConfig
    from pemd_tutorial.paper import evaluation_set, patch_accuracy
    from pemd_tutorial.pretrained import PAPER_PRETRAINED_NAMES

    manifest = pretrained_manifest("paper")
    assert {f"paper/{row}" for row in manifest["networks"]} == set(PAPER_PRETRAINED_NAMES)
    cfg = PaperConfig.from_dict(manifest["config"])
    standard = PaperConfig.standard(device=cfg.device)
    # the standard profile: every field, and the λ of every T2w row (λ of other contrasts may be added)
    assert {k: v for k, v in cfg.to_dict().items() if k != "lambdas"} == \
        {k: v for k, v in standard.to_dict().items() if k != "lambdas"}
    rows = [row for row, (_, disc, _) in PAPER_METHODS.items() if disc is not None]
    assert all(cfg.lambda_for(row, "t2") == standard.lambda_for(row, "t2") for row in rows)
    test = evaluation_set(cfg, "test", "t2")
    same_platform = (manifest["machine"]["torch"], manifest["machine"]["cpu_capability"]) == (
        torch.__version__, torch.backends.cpu.get_cpu_capability())
    for name in PAPER_PRETRAINED_NAMES:
        want = manifest["networks"][name.split("/")[1]]["metrics"]["accuracy"]
        got = patch_accuracy(load_pretrained(name), test)
        assert abs(got - want) <= (1e-9 if same_platform else 0.005), (name, got, want)
    with pytest.raises(ValueError, match="'experiment'"):
        pretrained_manifest("dense")
