"""The registration network: generator G, correlation layer, and two classifier heads F1, F2.

Data flow for a batch of ``B`` pairs of ``H x W`` images (conventions: :mod:`data_utils.grid`)::

    fixed, moving (B, 1, H, W)
        -- G (shared weights) -->      features (B, C, H/s, W/s), unit length over C
        -- correlation layer -->       cost volume V (B, L, Hc, Wc), cosine similarity in [-1, 1]
        -- smoothing -->               V averaged over neighbouring control points (per label)
        -- F1, F2 (two heads) -->      logits (B, L, Hc, Wc) each; softmax over L

* **G** (:class:`FeatureNet`): per level two 3x3 convolutions with leaky ReLUs; level ``k`` runs at
  ``1 / 2**k`` of the image size (a stride-2 convolution starts each level), the first level's
  first convolution is followed by instance normalisation; biases start at zero. A final 1x1
  convolution and an L2 normalisation over channels give unit feature vectors, so the cost volume
  (:func:`pemd_tutorial.correlation.cost_volume`, multiplied by ``C``) is a cosine similarity.
* **Smoothing** (:func:`pemd_tutorial.correlation.smooth_cost`, ``cfg.cost_smoothing`` passes of
  a 3x3 box filter over the control points, each label on its own): the regularisation of
  classical discrete registration, also used by the MIND baseline. On the standard profile it
  raised the oracle's target validation accuracy after 1,000 steps from 40 % to 46 % (seed 0).
* **F1, F2** (:class:`CostHead`): the cost volume is read as ``L`` channels on the control-point
  grid; a 1x1 convolution mixes labels (smoothing over neighbouring labels), a 3x3 convolution
  mixes neighbouring control points (replicate padding), a 1x1 convolution maps back to ``L``
  logits. A learnable temperature ``tau`` adds the raw cost volume as a residual:
  ``logits = tau * V + MLP(V)``, so an untrained head starts near "argmax of the correlation",
  the classical discrete registration (the last 1x1 convolution starts with weights scaled by
  0.1 and zero bias). The two heads get different random initialisations (MCD
  needs two different classifiers).

All parameters are created from ``torch.manual_seed(cfg.seed)`` inside a forked RNG, so the same
seed gives the same network and building one does not disturb the global RNG.
"""

from __future__ import annotations

import math
from typing import ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from pemd_tutorial.config import Config, PaperConfig
from pemd_tutorial.correlation import cost_volume, smooth_cost

__all__ = ["ConcatNet", "CostHead", "FeatureNet", "RegistrationNet", "TwoHeadedNet"]

_SLOPE = 0.1


@runtime_checkable
class TwoHeadedNet(Protocol):
    """What the training engine, evaluation, selection and model files need of a network: the seam
    that :class:`RegistrationNet` (dense) and :class:`ConcatNet` (the paper's patches) share.

    A third network satisfies it and is registered once, in
    :data:`pemd_tutorial.pretrained.NETWORKS` (class, configuration class, architecture fields);
    nothing else switches on network classes.

    Attributes:
        config_class: the configuration class it is built from (``Config`` or ``PaperConfig``).
        dense: whole images with a grid of control points (``True``) or one control point per pair.
        config: the configuration it was built with; ``grid`` and ``control_spacing``: its labels.
    """

    config_class: ClassVar[type]
    dense: ClassVar[bool]
    config: object
    grid: object
    control_spacing: int

    def cost(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """What G makes of a pair and both heads read (a cost volume, or concatenated features)."""

    def classify(self, cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits ``(B, L, Hc, Wc)`` of F1 and F2."""

    def __call__(self, fixed: torch.Tensor, moving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``classify(cost(fixed, moving))``."""

    def generator_parameters(self) -> list[nn.Parameter]:
        """G's parameters (step C's optimiser)."""

    def head_parameters(self) -> list[nn.Parameter]:
        """F1's and F2's parameters (step B's optimiser)."""


class FeatureNet(nn.Module):
    """Generator G: image ``(B, 1, H, W)`` -> unit features ``(B, C_last, H/s, W/s)``.

    ``s = 2 ** (len(channels) - 1)``. The input is standardised per image (zero mean, unit
    standard deviation) so that the network does not depend on the intensity scale.
    """

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for k, c in enumerate(channels):
            stride = 1 if k == 0 else 2
            layers += [nn.Conv2d(c_in, c, 3, stride=stride, padding=1)]
            if k == 0:
                layers += [nn.InstanceNorm2d(c, affine=True)]
            layers += [nn.LeakyReLU(_SLOPE), nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(_SLOPE)]
            c_in = c
        layers += [nn.Conv2d(c_in, c_in, 1)]
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):  # zero biases: features start input-driven, not constant
                nn.init.zeros_(m.bias)
        self.out_channels = c_in
        self.stride = 2 ** (len(channels) - 1)
        # channels-last weights and activations: the convolutions' forward + backward are about
        # 25 % faster on a CPU (benchmarks/bench_train_step.py); values are the same up to rounding
        self.to(memory_format=torch.channels_last)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        mean = image.mean(dim=(-2, -1), keepdim=True)
        std = image.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
        x = ((image - mean) / std).contiguous(memory_format=torch.channels_last)
        return F.normalize(self.body(x), dim=1, eps=1e-6)


class CostHead(nn.Module):
    """Classifier head F: cost volume ``(B, L, Hc, Wc)`` -> logits ``(B, L, Hc, Wc)``.

    ``logits = exp(log_tau) * V + conv1x1(act(conv3x3(act(conv1x1(V)))))``.

    Args:
        n_labels: ``L``.
        hidden: hidden channels.
        temperature: initial ``tau`` (the residual's scale; ``V`` is a cosine in [-1, 1]).
    """

    def __init__(self, n_labels: int, hidden: int, temperature: float = 10.0, residual: bool = True):
        super().__init__()
        self.residual = bool(residual)
        self.mix_labels = nn.Conv2d(n_labels, hidden, 1)
        self.mix_points = nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="replicate")
        self.out = nn.Conv2d(hidden, n_labels, 1)
        if self.residual:
            with torch.no_grad():  # a small correction at first: logits start near tau * V
                self.out.weight.mul_(0.1)
                self.out.bias.zero_()
        self.log_tau = nn.Parameter(torch.tensor(math.log(temperature)), requires_grad=self.residual)

    def forward(self, cost: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.mix_labels(cost), _SLOPE)
        h = F.leaky_relu(self.mix_points(h), _SLOPE)
        if not self.residual:  # the MLP alone: two heads that differ from the start
            return self.out(h)
        return self.log_tau.exp() * cost + self.out(h)


class RegistrationNet(nn.Module):
    """G + correlation layer + two heads (F1, F2).

    Attributes ``generator`` (G), ``head1`` (F1) and ``head2`` (F2) let the training loop give G
    and the heads separate optimisers.

    Args:
        cfg: the sizes (``channels``, ``head_channels``, ``radius``/``label_step``,
            ``control_spacing``, ``metric``) and the initialisation ``seed``.

    Example:
        >>> cfg = Config(image_size=32, radius=2, channels=(4, 8), head_channels=8)
        >>> net = RegistrationNet(cfg)
        >>> x = torch.rand(2, 1, 32, 32)
        >>> [tuple(t.shape) for t in net(x, x)]
        [(2, 25, 8, 8), (2, 25, 8, 8)]
    """

    config_class: ClassVar[type] = Config
    dense: ClassVar[bool] = True

    def __init__(self, cfg: Config):
        super().__init__()
        if not isinstance(cfg, Config):
            raise TypeError(f"RegistrationNet 'cfg' must be a Config, got {type(cfg).__name__}")
        self.config = cfg.replace()  # a copy: what save_model() writes beside the weights
        self.metadata: dict = {}  # free-form notes of a loaded model file (see pemd_tutorial.pretrained)
        self.grid = cfg.grid
        self.image_size = cfg.image_size
        self.control_spacing = cfg.control_spacing
        self.metric = cfg.metric
        self.cost_smoothing = cfg.cost_smoothing
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.generator = FeatureNet(cfg.channels)
            self.head1 = CostHead(self.grid.n_labels, cfg.head_channels, residual=cfg.head_residual)
            self.head2 = CostHead(self.grid.n_labels, cfg.head_channels, residual=cfg.head_residual)

    def _check_images(self, fixed: torch.Tensor, moving: torch.Tensor) -> None:
        if fixed.dim() != 4 or fixed.shape[1] != 1:
            raise ValueError(
                f"RegistrationNet 'fixed' must have shape (B, 1, H, W), got {tuple(fixed.shape)}"
            )
        if moving.shape != fixed.shape:
            raise ValueError(
                f"RegistrationNet 'moving' must have the shape of 'fixed' {tuple(fixed.shape)}, "
                f"got {tuple(moving.shape)}"
            )
        s = self.generator.stride
        h, w = fixed.shape[-2:]
        if h % s or w % s or h % self.control_spacing or w % self.control_spacing:
            raise ValueError(
                f"RegistrationNet image size {h}x{w} must be divisible by the feature stride {s} and "
                f"the control spacing {self.control_spacing}"
            )

    def cost(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """G on both images, then the cost volume ``(B, L, Hc, Wc)``: a cosine similarity, smoothed
        over neighbouring control points (``cfg.cost_smoothing`` 3x3 box-filter passes)."""
        self._check_images(fixed, moving)
        b = fixed.shape[0]
        feats = self.generator(torch.cat([fixed, moving], dim=0))  # one pass, shared weights
        f_fix, f_mov = feats[:b], feats[b:]
        vol = cost_volume(f_fix, f_mov, self.grid, self.control_spacing,
                          feature_stride=self.generator.stride, metric=self.metric)
        vol = vol * f_fix.shape[1]  # mean over channels -> sum: cosine of unit vectors
        return smooth_cost(vol, self.cost_smoothing)

    def classify(self, cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two heads on a cost volume: logits of F1 and F2, each ``(B, L, Hc, Wc)``."""
        return self.head1(cost), self.head2(cost)

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of F1 and F2, each ``(B, L, Hc, Wc)``, for images ``(B, 1, H, W)``."""
        return self.classify(self.cost(fixed, moving))

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters of G."""
        return list(self.generator.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of F1 and F2."""
        return list(self.head1.parameters()) + list(self.head2.parameters())


# ----------------------------------------------------------------------------------------------
# The paper's patch network
# ----------------------------------------------------------------------------------------------


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    # instance normalisation with a learned scale and shift per channel, computed as a GroupNorm
    # with one channel per group: the same function as InstanceNorm2d(affine=True) (equal up to
    # rounding), and a training step of this network about 10 % faster on a CPU
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
        nn.GroupNorm(c_out, c_out),
        nn.PReLU(c_out),
    )


class ConcatNet(nn.Module):
    """The network of the authors' slides for 25-class patch registration (the paper experiment).

    A feature extractor G of four blocks (Conv2d + instance normalisation + PReLU, the second with
    stride 2)
    shared by the fixed and the moving patch; the two feature maps are concatenated along the
    channels and classified by two differently initialised heads F1, F2 of three blocks each
    (two stride-2 blocks and a linear layer) into the 25 labels, multiplied by
    ``cfg.logit_scale``.

    It has the seams of :class:`RegistrationNet`, so the same training engine
    (:mod:`pemd_tutorial.training`) trains both: :meth:`cost` (here the concatenated features),
    :meth:`classify`, :meth:`generator_parameters`, :meth:`head_parameters`, ``grid`` and
    ``control_spacing``. A patch pair is one control point: the logits have shape ``(B, 25, 1, 1)``.

    Args:
        cfg: the sizes (``patch``, ``step``, ``extractor_channels``, ``classifier_channels``,
            ``logit_scale``).
        seed: the initialisation seed (default ``cfg.seed``); building a network does not touch
            the global random state.

    Example:
        >>> net = ConcatNet(PaperConfig())
        >>> x = torch.rand(2, 1, 36, 36)
        >>> [tuple(t.shape) for t in net(x, x)]
        [(2, 25, 1, 1), (2, 25, 1, 1)]
    """

    config_class: ClassVar[type] = PaperConfig
    dense: ClassVar[bool] = False

    def __init__(self, cfg: PaperConfig, seed: int | None = None):
        super().__init__()
        if not isinstance(cfg, PaperConfig):
            raise TypeError(f"ConcatNet() 'cfg' must be a PaperConfig, got {type(cfg).__name__}")
        seed = cfg.seed if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"ConcatNet() 'seed' must be an integer, got {type(seed).__name__}")
        self.config = cfg
        self.grid = cfg.grid
        self.patch = cfg.patch
        self.control_spacing = cfg.control_spacing
        self.logit_scale = float(cfg.logit_scale)
        c = cfg.extractor_channels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.extractor = nn.Sequential(
                _block(1, c[0]), _block(c[0], c[1], stride=2), _block(c[1], c[2]), _block(c[2], c[3])
            )
            side = cfg.patch // 2
            self.heads = nn.ModuleList([self._classifier(2 * c[3], side) for _ in range(2)])

    def _classifier(self, c_in: int, side: int) -> nn.Sequential:
        a, b = self.config.classifier_channels
        out_side = math.ceil(math.ceil(side / 2) / 2)
        return nn.Sequential(
            _block(c_in, a, stride=2),
            _block(a, b, stride=2),
            nn.Flatten(),
            nn.Linear(b * out_side * out_side, self.grid.n_labels),
        )

    def cost(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """G on both patches ``(B, 1, P, P)`` -> concatenated features ``(B, 2 C, P/2, P/2)``."""
        expected = (1, self.patch, self.patch)
        if fixed.dim() != 4 or tuple(fixed.shape[1:]) != expected or moving.shape != fixed.shape:
            raise ValueError(
                f"ConcatNet 'fixed' and 'moving' must both have shape (B, 1, {self.patch}, {self.patch}), "
                f"got {tuple(fixed.shape)} and {tuple(moving.shape)}"
            )
        both = self.extractor(torch.cat([fixed, moving], dim=0))
        return torch.cat(both.chunk(2, dim=0), dim=1)

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two heads: logits ``(B, 25, 1, 1)`` each, already multiplied by ``logit_scale``."""
        return tuple(  # type: ignore[return-value]
            (head(features) * self.logit_scale)[:, :, None, None] for head in self.heads
        )

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of F1 and F2, each ``(B, 25, 1, 1)``, for patches ``(B, 1, P, P)``."""
        return self.classify(self.cost(fixed, moving))

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters of G (the shared extractor)."""
        return list(self.extractor.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of F1 and F2."""
        return list(self.heads.parameters())

    def weight_counts(self) -> dict[str, int]:
        """Weights of the extractor and of one classifier."""
        return {
            "extractor": sum(p.numel() for p in self.extractor.parameters()),
            "classifier": sum(p.numel() for p in self.heads[0].parameters()),
        }
