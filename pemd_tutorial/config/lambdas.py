"""The weights λ of step B of maximum classifier discrepancy, with how each was chosen.

Every value here was chosen **without a target label** (protocol: ``docs/selection.md``) by the
benchmark named beside it, whose results file is committed; where the target's validation labels
would have chosen differently, the comment says so. :class:`pemd_tutorial.config.Config` and
:class:`pemd_tutorial.config.PaperConfig` take their profiles' ``lambdas`` from these tables.
"""

from __future__ import annotations

__all__ = ["FLAIR_LAMBDAS", "FULL_LAMBDAS", "PAPER_STANDARD_LAMBDAS", "QUICK_LAMBDAS", "STANDARD_LAMBDAS",
           "STANDARD_LAMBDAS_BY_TARGET"]

# Chosen for the standard profile WITHOUT target labels by benchmarks/tune_lambda.py (protocol:
# docs/selection.md): seeds 0, 1 and 2, fresh pairs every step, 400 source and 150 adaptation steps;
# per discrepancy the eligible λ (collapse rule on the *source* validation accuracy) with the lowest
# mean MIND-SSD between the fixed image and the moving image warped by the prediction, on the
# unlabelled target validation pairs (pemd_tutorial/results/lambda_standard_labelfree.json). Mean
# MIND-SSD / target validation accuracy (the accuracy is a reference only, never used to choose):
#   L1   1: 0.1273 / 35.0   2: 0.1246 / 40.9   3: 0.1279 / 39.7   5: 0.1372 / 35.1 %
#   pEMD 0.3: 0.1240 / 38.3   0.5: 0.1195 / 42.0   0.7: 0.1224 / 42.8   1: 0.1550 / 37.6 %
#   SWD  1: 0.1883 / 1.7   10: 0.1873 / 1.9 % (no λ moves it)
# Target validation labels would have picked the same λ for L1 and SWD, and 0.7 for pEMD.
STANDARD_LAMBDAS = {"l1": 2.0, "swd": 10.0, "pemd": 0.5}
# The FLAIR-like target, the same protocol (benchmarks/results/lambda_standard_flair.json, seeds 0-2).
# Mean MIND-SSD / target validation accuracy (reference only; source-only 49.7 %):
#   L1   0.3: 0.1279 / 54.1   1: 0.1275 / 54.6   3: 0.1301 / 53.9   5: 0.1337 / 52.4 %
#   pEMD 0.1: 0.1254 / 54.5   0.3: 0.1253 / 54.7   0.7: 0.1261 / 53.9   1: 0.1510 / 49.3 %
#   SWD  1: 0.1291 / 52.3   10: 0.1290 / 52.4 %
# Target validation labels would have picked the same λ for all three.
FLAIR_LAMBDAS = {"l1": 1.0, "swd": 10.0, "pemd": 0.3}
#: The standard profile's weights per target contrast (``Config.standard(target_contrast=...)``);
#: the PD-weighted target (not swept) uses the T2w values, the FLAIR-like target with lesions (not
#: swept) the FLAIR-like target's: weights chosen without labels on a related contrast, fixed before
#: any of its results were seen.
STANDARD_LAMBDAS_BY_TARGET: dict[str, dict[str, float]] = {"t2": STANDARD_LAMBDAS, "flair": FLAIR_LAMBDAS,
                                                           "flair_lesion": FLAIR_LAMBDAS}
# The quick smoke profile and the untested full profile use the same values.
QUICK_LAMBDAS = dict(STANDARD_LAMBDAS)
FULL_LAMBDAS = dict(STANDARD_LAMBDAS)


# ==============================================================================================
# The patch experiment
# ==============================================================================================

#: Step-B weights of the paper experiment's ``standard`` profile, per row. For the T2w column (the
#: plain row keys) chosen **without target labels** by ``benchmarks/tune_lambda_paper.py`` (seed 0,
#: grid 0.03 / 0.1 / 0.3 / 1, ``benchmarks/results/lambda_paper_labelfree.json``): the eligible λ
#: (collapse rule on the T1w validation accuracy) with the lowest MIND-SSD between the fixed patch
#: and the moving patch shifted by the predicted label, on unlabelled T2w validation patches. The
#: labels would have picked the same λ for every row but MCD-SWD (0.03). The ``"inter/<row>"`` keys
#: of the opt-in intermediate-weighted target were chosen the same way, without labels, on that
#: contrast's unlabelled validation patches (``lambda_paper_inter_labelfree.json``; the labels would
#: have picked the same λ for every row but MCD-pEMD (16), 0.1). The PD-weighted target uses the
#: T2w values (not swept). The plain discrepancy keys repeat the T2w choices, for :meth:`PaperConfig.lam`.
PAPER_STANDARD_LAMBDAS: dict[str, float] = {
    "mcd_swd": 0.3, "mcd_l1": 0.3, "mcd_pemd2": 0.3, "mcd_pemd16": 0.3, "mcd_pemd16_swd": 0.3,
    "inter/mcd_swd": 0.03, "inter/mcd_l1": 0.03, "inter/mcd_pemd2": 0.3, "inter/mcd_pemd16": 0.3,
    "inter/mcd_pemd16_swd": 0.3,
    "swd": 0.3, "l1": 0.3, "pemd": 0.3, "pemd+swd": 0.3,
}
