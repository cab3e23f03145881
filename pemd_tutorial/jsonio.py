"""One way to write a results file: :func:`write_json`, atomic and strict about non-finite numbers.

Every JSON file the package, its benchmarks and its scripts write goes through it, so that

* a run that is killed while writing leaves the previous file intact (the text goes to a
  temporary file in the same folder, which then replaces the target in one step);
* NaN and infinite numbers become ``null`` (JSON has no NaN; Python's default would write the
  invalid token ``NaN`` that other readers reject);
* tensors and NumPy arrays or scalars become lists and numbers, tuples lists, keys strings.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["SHIPPED_RESULTS_DIR", "jsonable", "read_shipped_results", "write_json"]

#: Results files that ship inside the package (``pemd_tutorial/results/``), so that a notebook can
#: show a long benchmark's numbers wherever the package is installed (Colab included) without
#: running it or fetching anything. The benchmark that makes each file writes it there.
SHIPPED_RESULTS_DIR = Path(__file__).resolve().parent / "results"


def jsonable(x: Any) -> Any:
    """``x`` with tensors/arrays as lists, NumPy scalars as numbers, non-finite floats as ``None``.

    Example:
        >>> jsonable({"a": float("nan"), "b": (1, torch.tensor([0.5]))})
        {'a': None, 'b': [1, [0.5]]}
    """
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return jsonable(x.detach().cpu().tolist())
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 1) -> Path:
    """Write ``jsonable(obj)`` to ``path`` atomically (a temporary file, then one rename); returns the path.

    Raises:
        TypeError: ``obj`` holds something JSON cannot represent (the message names the file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = json.dumps(jsonable(obj), indent=indent, allow_nan=False) + "\n"
    except TypeError as err:
        raise TypeError(f"write_json() cannot write {str(path)!r}: {err}") from None
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_shipped_results(name: str) -> Any:
    """A results file that ships with the package (:data:`SHIPPED_RESULTS_DIR`), e.g.
    ``read_shipped_results("adaptation_pays")`` (the file ``adaptation_pays.json``).

    Raises:
        ValueError: no such file (the message lists the ones that ship).
    """
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise ValueError(f"read_shipped_results() 'name' must be a file name without folders, got {name!r}")
    path = SHIPPED_RESULTS_DIR / (name if name.endswith(".json") else name + ".json")
    if not path.is_file():
        known = sorted(p.stem for p in SHIPPED_RESULTS_DIR.glob("*.json"))
        raise ValueError(f"read_shipped_results() has no results file {name!r}; shipped: {known}")
    return json.loads(path.read_text())
