"""pemd-tutorial: multimodal registration by domain adaptation with projected EMD discrepancies.

Conventions (label order, ``(dx, dy)``, pixel units) are defined once in :mod:`data_utils.grid`.
"""

from data_utils.grid import LabelGrid

__version__ = "0.1.0"

__all__ = ["LabelGrid", "__version__"]
