import random

import numpy as np
import pytest
import torch

from pemd_tutorial import loop
from pemd_tutorial.loop import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint


def test_round_trip_with_weights_only_load(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(4)
    state = {"model": net.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "step": 7,
             "log": [{"step": 1, "val_acc": None, "phase": "source"}], "rng": capture_rng_state()}
    path = save_checkpoint(tmp_path / "sub" / "c.pt", state)
    back = load_checkpoint(path)
    assert back["step"] == 7 and back["log"] == state["log"]
    for k, v in state["model"].items():
        assert torch.equal(back["model"][k], v)
    g2 = torch.Generator()
    g2.set_state(back["gen"])
    assert torch.equal(torch.rand(4, generator=g2), torch.rand(4, generator=gen))
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temporary file left


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})

    def broken_save(obj, fh):
        fh.write(b"partial garbage")
        raise KeyboardInterrupt  # killed in the middle of writing

    monkeypatch.setattr(loop.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_rng_state_round_trip():
    torch.manual_seed(1)
    np.random.seed(2)  # noqa: NPY002 (the global state is what is captured)
    random.seed(3)
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    torch.manual_seed(10)
    np.random.seed(20)  # noqa: NPY002
    random.seed(30)
    restore_rng_state(state)
    got = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]


def test_checkpoint_errors(tmp_path):
    with pytest.raises(TypeError, match="'state'"):
        save_checkpoint(tmp_path / "c.pt", [1, 2])
    with pytest.raises(ValueError, match="'path'"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_phase_leaves_the_callers_flush_denormal_mode_as_it_found_it():
    """run_phase flushes denormals while it trains, then restores the mode it found (not torch's default)."""
    from pemd_tutorial.config import Config
    from pemd_tutorial.model import RegistrationNet

    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    cfg = Config(image_size=16, radius=1, label_step=2.0, control_spacing=4, channels=(4,), head_channels=4,
                 val_every=0, checkpoint_every=0)
    net = RegistrationNet(cfg)
    seen = []

    def step():
        seen.append(loop.flushing_denormals())
        return {}

    for before in (False, True):
        torch.set_flush_denormal(before)
        try:
            loop.run_phase(phase="p", model=net, cfg=cfg, steps=1, step_fn=step,
                           optimizers=loop.make_optimizers(net, 1e-3), generators={}, meta={}, val=None,
                           checkpoint_dir=None, resume=False, progress=False)
            assert loop.flushing_denormals() is before
        finally:
            torch.set_flush_denormal(False)
    assert seen == [True, True]
