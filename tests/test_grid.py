import pytest
import torch

from data_utils.grid import LabelGrid, at_control_points, check_control_spacing


def test_label_order_is_row_major_over_y_then_x():
    g = LabelGrid(radius=2, step=1.5)
    d = g.displacements(dtype=torch.float64)
    assert d.shape == (25, 2)
    hist = d.reshape(5, 5, 2)
    # last axis moves along x, second-last along y
    assert torch.equal(hist[0, :, 0], torch.tensor([-3.0, -1.5, 0.0, 1.5, 3.0], dtype=torch.float64))
    assert torch.all(hist[0, :, 1] == -3.0)
    assert torch.equal(hist[:, 0, 1], torch.tensor([-3.0, -1.5, 0.0, 1.5, 3.0], dtype=torch.float64))
    assert g.index(0, 0) == 12 and g.index(2, -2) == 4 and g.index(-2, 2) == 20


def test_quantise_round_trip_and_outside_flag():
    g = LabelGrid(radius=2, step=2.0)
    field = torch.zeros(1, 2, 1, 4)
    field[0, 0] = torch.tensor([0.9, 1.1, -4.0, 5.2])  # dx
    field[0, 1] = torch.tensor([0.0, -2.9, 3.0, 0.0])  # dy
    labels, inside = g.quantise(field)
    assert labels.tolist() == [[[g.index(0, 0), g.index(1, -1), g.index(-2, 2), g.index(2, 0)]]]
    assert inside.tolist() == [[[True, True, True, False]]]
    back = g.to_displacement(labels)
    assert back[0, :, 0, 1].tolist() == [2.0, -2.0]


def test_expected_displacement_of_one_hot_is_label_displacement():
    g = LabelGrid(radius=1, step=3.0)
    probs = torch.zeros(2, 9, 1, 1, dtype=torch.float64)
    probs[0, g.index(1, -1)] = 1.0
    probs[1, g.index(-1, 0)] = 0.5
    probs[1, g.index(1, 0)] = 0.5
    e = g.expected_displacement(probs)
    assert e[0, :, 0, 0].tolist() == [3.0, -3.0]
    assert e[1, :, 0, 0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("radius,step", [(0, 1.0), (-1, 1.0), (2.5, 1.0), (2, 0.0), (2, -1.0)])
def test_bad_grid_arguments_raise(radius, step):
    with pytest.raises(ValueError, match="radius|step"):
        LabelGrid(radius=radius, step=step)


def test_control_points():
    assert check_control_spacing(64, 32, 8) == (8, 4)
    x = torch.arange(16.0).reshape(1, 4, 4)
    assert at_control_points(x, 2).tolist() == [[[5.0, 7.0], [13.0, 15.0]]]
    with pytest.raises(ValueError, match="control_spacing"):
        check_control_spacing(30, 32, 8)
    with pytest.raises(ValueError, match="field"):
        LabelGrid().quantise(torch.zeros(2, 3, 4, 4))
