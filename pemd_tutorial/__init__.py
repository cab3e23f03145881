"""pemd-tutorial: multimodal registration by domain adaptation with projected EMD discrepancies.

Conventions (label order, ``(dx, dy)``, pixel units) are defined once in :mod:`data_utils.grid`.
The public API at a glance:

* discrepancies (:mod:`pemd_tutorial.emd`): :func:`emd_1d`, :func:`projected_emd`,
  :func:`sliced_wasserstein_discrepancy`, :func:`l1_discrepancy`, :func:`exact_emd`,
  :func:`project_histogram`, :data:`DISCREPANCIES`;
* the correlation layer (:mod:`pemd_tutorial.correlation`): :func:`cost_volume`.

The model, training, evaluation and experiment modules are imported as submodules
(``from pemd_tutorial.training import adapt``) so that ``import pemd_tutorial`` stays light.
"""

from data_utils.grid import LabelGrid
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

__version__ = "0.1.0"

__all__ = [
    "DISCREPANCIES",
    "LabelGrid",
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
