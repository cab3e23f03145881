"""pemd-tutorial: multimodal registration by domain adaptation with projected EMD discrepancies.

Conventions (label order, ``(dx, dy)``, pixel units) are defined once in :mod:`data_utils.grid`;
the method is described in ``docs/method.md``. The public API at a glance, module by module:

* :mod:`~pemd_tutorial.emd` (pure maths): :func:`emd_1d`, :func:`projected_emd`,
  :func:`sliced_wasserstein_discrepancy`, :func:`l1_discrepancy`, :func:`exact_emd`,
  :func:`project_histogram`;
* :mod:`~pemd_tutorial.discrepancies`: :data:`DISCREPANCIES`, :func:`scaled_discrepancy` and the
  modules :class:`ProjectedEMD`, :class:`SlicedWassersteinDiscrepancy`, :class:`L1Discrepancy`;
* :mod:`~pemd_tutorial.correlation`: :func:`cost_volume`; :mod:`~pemd_tutorial.model`:
  :class:`RegistrationNet`; :mod:`~pemd_tutorial.config`: :class:`Config`;
* :mod:`~pemd_tutorial.training`: :func:`train_source`, :func:`adapt` (maximum classifier
  discrepancy), :func:`train_oracle`; the generic loop and its checkpoints in
  :mod:`~pemd_tutorial.loop`;
* :mod:`~pemd_tutorial.evaluate`: :func:`predict`, :func:`label_metrics`, :func:`evaluate_model`,
  :func:`evaluate_probs`; :mod:`~pemd_tutorial.mind`: :func:`mind_baseline`,
  :func:`mind_descriptors`;
* :mod:`~pemd_tutorial.selection`: :func:`label_free_scores`, :func:`choose_lambda` (λ without a
  target label); :mod:`~pemd_tutorial.similarity`: NMI and MIND-SSD;
* :mod:`~pemd_tutorial.pretrained`: :func:`save_model`, :func:`load_model`,
  :func:`load_pretrained`;
* :mod:`~pemd_tutorial.experiment`: :func:`run_experiment` (``python -m pemd_tutorial``);
  :mod:`~pemd_tutorial.registration`: :func:`register` (``python -m pemd_tutorial register``), a
  user's own NIfTI pair on any grids;
  :mod:`~pemd_tutorial.report`: its files; :mod:`~pemd_tutorial.figures` and
  :mod:`~pemd_tutorial.widgets`: the figures and sliders of the report and the notebooks.
"""

from data_utils.grid import LabelGrid
from pemd_tutorial.config import Config, PaperConfig
from pemd_tutorial.correlation import cost_volume
from pemd_tutorial.discrepancies import (
    DISCREPANCIES,
    DISCREPANCY_NAMES,
    L1Discrepancy,
    ProjectedEMD,
    SlicedWassersteinDiscrepancy,
    scaled_discrepancy,
)
from pemd_tutorial.emd import (
    emd_1d,
    exact_emd,
    l1_discrepancy,
    project_histogram,
    projected_emd,
    sliced_wasserstein_discrepancy,
    sum_tolerance,
)
from pemd_tutorial.evaluate import evaluate_model, evaluate_probs, label_metrics, predict
from pemd_tutorial.experiment import METHODS, run_experiment
from pemd_tutorial.mind import mind_baseline, mind_descriptors
from pemd_tutorial.model import ConcatNet, RegistrationNet
from pemd_tutorial.pretrained import load_model, load_pretrained, save_model
from pemd_tutorial.registration import register
from pemd_tutorial.selection import choose_lambda, label_free_scores
from pemd_tutorial.training import adapt, train_oracle, train_source

__version__ = "0.1.0"

__all__ = [
    "DISCREPANCIES",
    "DISCREPANCY_NAMES",
    "METHODS",
    "ConcatNet",
    "Config",
    "L1Discrepancy",
    "LabelGrid",
    "PaperConfig",
    "ProjectedEMD",
    "RegistrationNet",
    "SlicedWassersteinDiscrepancy",
    "__version__",
    "adapt",
    "choose_lambda",
    "cost_volume",
    "emd_1d",
    "evaluate_model",
    "evaluate_probs",
    "exact_emd",
    "l1_discrepancy",
    "label_free_scores",
    "label_metrics",
    "load_model",
    "load_pretrained",
    "mind_baseline",
    "mind_descriptors",
    "predict",
    "project_histogram",
    "projected_emd",
    "register",
    "run_experiment",
    "save_model",
    "scaled_discrepancy",
    "sliced_wasserstein_discrepancy",
    "sum_tolerance",
    "train_oracle",
    "train_source",
]
