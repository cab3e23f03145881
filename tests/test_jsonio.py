"""pemd_tutorial.jsonio: atomic, NaN-safe results files."""

import json
import math

import pytest
import torch

from pemd_tutorial.jsonio import read_shipped_results, write_json


def test_write_json_turns_nan_and_tensors_into_valid_json_and_leaves_no_temporary_file(tmp_path):
    path = write_json(tmp_path / "sub" / "r.json", {"a": float("nan"), "b": torch.tensor([0.5, math.inf])})
    assert json.loads(path.read_text()) == {"a": None, "b": [0.5, None]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_write_json_names_the_file_and_keeps_the_old_one_when_it_cannot_write(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": 1})
    with pytest.raises(TypeError, match="r.json"):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}


def test_read_shipped_results_lists_the_shipped_files_when_the_name_is_unknown():
    assert read_shipped_results("main_standard_cpu")["wall_time_s"] > 0
    with pytest.raises(ValueError, match="main_standard_cpu"):
        read_shipped_results("no_such_results")
    with pytest.raises(ValueError, match="without folders"):
        read_shipped_results("../main_standard_cpu")
