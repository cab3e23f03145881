"""The package's settings, one module per job.

* :mod:`~pemd_tutorial.config.profiles`: the configuration classes, :class:`Config` (the main job,
  the notebooks, the shipped networks; profiles ``standard``, ``quick``, ``full``) and
  :class:`PaperConfig` (the patch experiment; ``standard``, ``quick``), the target contrasts each
  accepts and the patch experiment's rows. Both are frozen dataclasses: a results file and a
  network record the configuration beside their numbers, so a configuration never changes after it
  is made; :meth:`Config.replace` makes a validated copy with some fields changed.
* :mod:`~pemd_tutorial.config.lambdas`: the step-B weights λ with the benchmark and results file
  that chose each, without target labels.
* :mod:`~pemd_tutorial.config.published`: the paper's published numbers with their source, and the
  rows of ours that stand beside them.

Every name is importable from ``pemd_tutorial.config`` itself.
"""

from pemd_tutorial.config.lambdas import (
    FLAIR_LAMBDAS,
    FULL_LAMBDAS,
    PAPER_STANDARD_LAMBDAS,
    QUICK_LAMBDAS,
    STANDARD_LAMBDAS,
    STANDARD_LAMBDAS_BY_TARGET,
)
from pemd_tutorial.config.profiles import (
    DENSE_TARGET_CONTRASTS,
    PAPER_METHODS,
    PAPER_REFERENCE_NAMES,
    PAPER_TARGET_CONTRASTS,
    Config,
    PaperConfig,
)
from pemd_tutorial.config.published import PAPER_ACCURACY, SLIDES_COUNTERPARTS

__all__ = [
    "DENSE_TARGET_CONTRASTS",
    "FLAIR_LAMBDAS",
    "FULL_LAMBDAS",
    "PAPER_ACCURACY",
    "PAPER_METHODS",
    "PAPER_REFERENCE_NAMES",
    "PAPER_STANDARD_LAMBDAS",
    "PAPER_TARGET_CONTRASTS",
    "QUICK_LAMBDAS",
    "SLIDES_COUNTERPARTS",
    "STANDARD_LAMBDAS",
    "STANDARD_LAMBDAS_BY_TARGET",
    "Config",
    "PaperConfig",
]
