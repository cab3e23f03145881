"""Shared test factories: tiny configurations and a NIfTI writer (``from helpers import tiny_config``).

A plain module beside the tests (pytest puts this folder on ``sys.path``), so that test modules do not
import ``conftest`` by name; fixtures stay in ``conftest.py``. Every test makes its own data from
these; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from pemd_tutorial.config import Config

__all__ = ["SMALL", "TINY", "small_config", "tiny_config", "write_nifti"]

#: A 16 px configuration whose whole main job (every method, one seed) runs in seconds.
TINY = dict(image_size=16, radius=1, label_step=2.0, control_spacing=4, channels=(4,), head_channels=4,
            n_train_pairs=4, n_val_pairs=2, n_test_pairs=3, batch_size=2, source_steps=2, adapt_steps=1,
            oracle_steps=2, num_k=1, n_projections=8, val_every=1, checkpoint_every=1, device="cpu")
#: A 32 px configuration with two resolution levels, for the network and training-step tests.
SMALL = dict(image_size=32, radius=2, label_step=2.0, control_spacing=4, channels=(4, 8), head_channels=8,
             batch_size=4, n_train_pairs=8, n_val_pairs=4, n_test_pairs=4)


def tiny_config(**overrides) -> Config:
    """:data:`TINY` with ``overrides``."""
    return Config(**{**TINY, **overrides})


def small_config(**overrides) -> Config:
    """:data:`SMALL` with ``overrides``."""
    return Config(**{**SMALL, **overrides})


def write_nifti(path: str | Path, data, affine: np.ndarray | None = None) -> Path:
    """Write ``data`` as a float32 NIfTI file (identity affine by default); returns the path."""
    path = Path(path)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4) if affine is None else affine),
             str(path))
    return path
