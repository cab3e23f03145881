"""The numbers the paper's authors published, with their source, and the rows that stand beside them.

Nothing here is measured by this package: these are the values a reader compares ours with.
"""

from __future__ import annotations

__all__ = ["PAPER_ACCURACY", "SLIDES_COUNTERPARTS"]

#: Target label accuracy (%) of the paper's experiment as the authors' MIDL 2020 talk slides report
#: it (25 displacement classes, 2D patches of canine T1w/T2w MRI from the MICCAI SATA 2013 data).
PAPER_ACCURACY = {"no registration": 4.0, "no adaptation": 31.9, "MCD-SWD": 33.2, "MCD-pEMD (16) + SWD": 44.1}

#: For each of the slides' bars, the row that plays its role: in the main job (``"main_job"``, whose
#: projected EMD runs without SWD) and in the patch experiment (``"patch_experiment"``).
SLIDES_COUNTERPARTS: dict[str, dict[str, str]] = {
    "no registration": {"main_job": "identity", "patch_experiment": "identity"},
    "no adaptation": {"main_job": "source", "patch_experiment": "source"},
    "MCD-SWD": {"main_job": "mcd_swd", "patch_experiment": "mcd_swd"},
    "MCD-pEMD (16) + SWD": {"main_job": "mcd_pemd", "patch_experiment": "mcd_pemd16_swd"},
}
