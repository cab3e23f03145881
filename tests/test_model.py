
import pytest
import torch
from helpers import small_config as tiny

from pemd_tutorial.correlation import cost_volume
from pemd_tutorial.model import RegistrationNet


@pytest.mark.parametrize("channels,stride", [((4,), 1), ((4, 8), 2), ((4, 8, 8), 4)])
def test_shapes_and_feature_stride(channels, stride):
    cfg = tiny(channels=channels)
    assert cfg.feature_stride == stride
    net = RegistrationNet(cfg)
    x = torch.rand(3, 1, 32, 32)
    feats = net.generator(x)
    assert feats.shape == (3, channels[-1], 32 // stride, 32 // stride)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(3, 32 // stride, 32 // stride))
    cost = net.cost(x, torch.rand(3, 1, 32, 32))
    assert cost.shape == (3, 25, 8, 8)
    assert cost.abs().max() <= 1 + 1e-5  # cosine of unit vectors
    l1, l2 = net(x, x)
    assert l1.shape == l2.shape == (3, 25, 8, 8)


@pytest.mark.parametrize("passes", [0, 2])
def test_cost_is_scaled_smoothed_correlation_of_generator_features(passes):
    cfg = tiny(cost_smoothing=passes)
    net = RegistrationNet(cfg)
    f, m = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    ref = cost_volume(net.generator(f), net.generator(m), cfg.grid, 4, feature_stride=2) * 8
    for _ in range(passes):  # 3x3 means over neighbouring control points, borders replicated
        padded = torch.nn.functional.pad(ref, (1, 1, 1, 1), mode="replicate")
        ref = sum(padded[..., a : a + 8, b : b + 8] for a in range(3) for b in range(3)) / 9
    torch.testing.assert_close(net.cost(f, m), ref, rtol=0, atol=1e-6)


def test_untrained_head_is_near_argmax_of_correlation():
    # the residual tau * V dominates at initialisation: identical images -> zero displacement label
    cfg = tiny(channels=(8, 16), cost_smoothing=0)
    net = RegistrationNet(cfg)
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 36, 36, generator=g), 5, stride=1)
    cost = net.cost(x, torch.roll(x, (1, 2), dims=(-2, -1)))
    l1, l2 = net.classify(cost)
    for logits in (l1, l2):
        assert (logits.argmax(1) == cost.argmax(1)).float().mean() > 0.8
    assert not torch.equal(l1, l2)


def test_heads_differ_and_same_seed_same_network():
    a, b, c = RegistrationNet(tiny(seed=0)), RegistrationNet(tiny(seed=0)), RegistrationNet(tiny(seed=1))
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.head1.out.weight, a.head2.out.weight)
    assert not torch.equal(a.generator.body[0].weight, c.generator.body[0].weight)


def test_building_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    RegistrationNet(tiny())
    assert torch.equal(torch.rand(3), expected)


def test_parameter_groups_partition_the_model():
    net = RegistrationNet(tiny())
    g = {id(p) for p in net.generator_parameters()}
    h = {id(p) for p in net.head_parameters()}
    assert not g & h
    assert g | h == {id(p) for p in net.parameters()}


def test_model_errors():
    net = RegistrationNet(tiny())
    with pytest.raises(ValueError, match="'fixed'"):
        net(torch.rand(2, 2, 32, 32), torch.rand(2, 2, 32, 32))
    with pytest.raises(ValueError, match="'moving'"):
        net(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 28))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(2, 1, 30, 30), torch.rand(2, 1, 30, 30))
    with pytest.raises(TypeError, match="'cfg'"):
        RegistrationNet({"image_size": 32})




def test_heads_without_the_shared_term_are_their_mlps_alone():
    torch.manual_seed(0)
    x, y = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    shared, plain = RegistrationNet(tiny()), RegistrationNet(tiny(head_residual=False))
    cost_s, cost_p = shared.cost(x, y), plain.cost(x, y)
    l1, l2 = shared.classify(cost_s)
    p1, p2 = plain.classify(cost_p)
    with torch.no_grad():  # tau scales the shared term only
        shared.head1.log_tau.add_(1.0)
        plain.head1.log_tau.add_(1.0)
    assert not torch.allclose(shared.classify(cost_s)[0], l1)
    assert torch.equal(plain.classify(cost_p)[0], p1)
    # the heads' start: nearly equal with the shared tau * V term, apart without it
    gap_shared = (l1.softmax(1) - l2.softmax(1)).abs().sum(1).mean()
    gap_plain = (p1.softmax(1) - p2.softmax(1)).abs().sum(1).mean()
    assert gap_plain > gap_shared
    with pytest.raises(ValueError, match="head_residual"):
        tiny(head_residual="no")
