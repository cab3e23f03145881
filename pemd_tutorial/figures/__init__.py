"""Every figure of the package: the main job's report, ``register`` and the tutorials draw with these.

Each ``plot_*`` function draws one kind of figure and returns its
:class:`~matplotlib.figure.Figure` (the caller shows or saves it); the widgets of
:mod:`pemd_tutorial.widgets` call them with a slider's value. Figures are sized for a page about
900 pixels wide at 100 dpi (:data:`DPI`), the width GitHub shows a notebook at. Figures draw; what
they show is computed elsewhere (:mod:`pemd_tutorial.evaluate`, :mod:`pemd_tutorial.emd`).

One module per subject:

* :mod:`~pemd_tutorial.figures.histograms`: label histograms, projections, cumulative sums and
  discrepancy curves (notebooks 01 and 02);
* :mod:`~pemd_tutorial.figures.images`: images, displacement fields, example registrations and the
  montage of ``register`` (notebooks 03 and 04, the main job);
* :mod:`~pemd_tutorial.figures.results`: accuracy bars, training curves, predicted distributions and
  the paper's published bars beside ours (notebooks 03 and 05, both experiments);
* :mod:`~pemd_tutorial.figures.mechanism`: what MCD does to the heads and the gradients of each
  discrepancy, drawn from the measured results in ``benchmarks/results/`` (notebook 03);
* :mod:`~pemd_tutorial.figures.base`: what they share.

Conventions are those of :mod:`data_utils.grid`: a label histogram has shape ``(L,)`` or
``(2R + 1, 2R + 1)`` with the last axis along ``x`` and the second-last along ``y``; displacements are
``(dx, dy)`` in pixels.
"""

from pemd_tutorial.figures.base import DPI, METHOD_COLOURS, histogram_image, method_colour
from pemd_tutorial.figures.histograms import (
    plot_correlation,
    plot_cumsums,
    plot_histogram,
    plot_projection,
    plot_projection_angles,
    plot_projection_pair,
    plot_shift_curves,
    projected_histogram,
)
from pemd_tutorial.figures.images import (
    pick_points,
    plot_displacement_field,
    plot_examples,
    plot_modalities,
    plot_registration_montage,
)
from pemd_tutorial.figures.mechanism import (
    benchmark_result,
    head_disagreement_summary,
    plot_discrepancy_gradients,
    plot_head_disagreement,
)
from pemd_tutorial.figures.results import (
    plot_accuracy,
    plot_adaptation_pays,
    plot_distributions,
    plot_label_histogram,
    plot_paper_comparison,
    plot_paper_experiment,
    plot_training_curves,
)

__all__ = [
    "DPI",
    "METHOD_COLOURS",
    "benchmark_result",
    "head_disagreement_summary",
    "histogram_image",
    "method_colour",
    "pick_points",
    "plot_accuracy",
    "plot_adaptation_pays",
    "plot_correlation",
    "plot_cumsums",
    "plot_discrepancy_gradients",
    "plot_displacement_field",
    "plot_distributions",
    "plot_examples",
    "plot_head_disagreement",
    "plot_histogram",
    "plot_label_histogram",
    "plot_modalities",
    "plot_paper_comparison",
    "plot_paper_experiment",
    "plot_projection",
    "plot_projection_angles",
    "plot_projection_pair",
    "plot_registration_montage",
    "plot_shift_curves",
    "plot_training_curves",
    "projected_histogram",
]
