"""pemd-tutorial: multimodal registration by domain adaptation with projected EMD discrepancies.

Conventions (label order, ``(dx, dy)``, pixel units) are defined once in :mod:`data_utils.grid`.
The public API at a glance:

* discrepancies (:mod:`pemd_tutorial.emd`): :func:`emd_1d`, :func:`projected_emd`,
  :func:`sliced_wasserstein_discrepancy`, :func:`l1_discrepancy`, :func:`exact_emd`,
  :func:`project_histogram`, :data:`DISCREPANCIES`;
* the correlation layer (:mod:`pemd_tutorial.correlation`): :func:`cost_volume`;
* configuration and network: :class:`Config`, :class:`RegistrationNet`;
* training (:mod:`pemd_tutorial.training`): :func:`train_source`, :func:`adapt` (maximum classifier
  discrepancy), :func:`train_oracle`, :func:`predict`;
* evaluation: :func:`label_metrics`, :func:`evaluate_model`, :func:`evaluate_probs`,
  :func:`mind_baseline`, :func:`mind_descriptors`;
* the main job: :func:`run_experiment` (what ``python -m pemd_tutorial`` and notebook 03 call).
"""

from data_utils.grid import LabelGrid
from pemd_tutorial.config import DISCREPANCY_NAMES, Config
from pemd_tutorial.correlation import cost_volume
from pemd_tutorial.emd import (
    DISCREPANCIES,
    emd_1d,
    exact_emd,
    l1_discrepancy,
    project_histogram,
    projected_emd,
    sliced_wasserstein_discrepancy,
    sum_tolerance,
)
from pemd_tutorial.evaluate import evaluate_model, evaluate_probs, label_metrics
from pemd_tutorial.experiment import METHODS, run_experiment
from pemd_tutorial.mind import mind_baseline, mind_descriptors
from pemd_tutorial.model import RegistrationNet
from pemd_tutorial.training import adapt, predict, train_oracle, train_source

__version__ = "0.1.0"

__all__ = [
    "DISCREPANCIES",
    "DISCREPANCY_NAMES",
    "METHODS",
    "Config",
    "LabelGrid",
    "RegistrationNet",
    "adapt",
    "evaluate_model",
    "evaluate_probs",
    "label_metrics",
    "mind_baseline",
    "mind_descriptors",
    "predict",
    "run_experiment",
    "train_oracle",
    "train_source",
    "__version__",
    "cost_volume",
    "emd_1d",
    "exact_emd",
    "l1_discrepancy",
    "project_histogram",
    "projected_emd",
    "sliced_wasserstein_discrepancy",
    "sum_tolerance",
]
