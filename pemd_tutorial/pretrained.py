"""Trained networks in files: :func:`save_model`, :func:`load_model` and the shipped networks.

A model file holds the weights of a :class:`~pemd_tutorial.model.RegistrationNet` (or of the
paper experiment's :class:`~pemd_tutorial.model.ConcatNet`) together with the
:class:`~pemd_tutorial.config.Config` (or :class:`~pemd_tutorial.config.PaperConfig`) it was built
and trained with (as JSON), in one
``torch.save`` file that loads with ``weights_only=True`` (no arbitrary pickles). It is written
atomically (:func:`pemd_tutorial.loop.save_checkpoint`).

The package ships the standard profile's seed-0 networks of the main job (source only, MCD-L1,
MCD-SWD, MCD-pEMD, oracle) in ``pemd_tutorial/pretrained/`` with a ``manifest.json`` (the
configuration, the command that made them, the sha256 of every file and each network's metrics
on the target test pairs), and the paper experiment's seed-0 networks of its T2w column in
``pemd_tutorial/pretrained/paper/`` (names ``"paper/<row>"``, e.g. ``"paper/mcd_pemd16_swd"``).
:func:`load_pretrained` returns one of them after checking its sha256;
``scripts/build_pretrained.py [--experiment paper]`` rebuilds them.

Example:
    >>> from pemd_tutorial import Config, RegistrationNet, load_model, save_model
    >>> import tempfile, os
    >>> net = RegistrationNet(Config(image_size=32, radius=2, channels=(4, 8), head_channels=8))
    >>> path = os.path.join(tempfile.mkdtemp(), "net.pt")
    >>> _ = save_model(net, path)
    >>> load_model(path).config.head_channels
    8
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from pemd_tutorial.config import PAPER_METHODS, Config, PaperConfig
from pemd_tutorial.loop import save_checkpoint
from pemd_tutorial.model import ConcatNet, RegistrationNet

__all__ = [
    "ARCHITECTURE_FIELDS",
    "PAPER_PRETRAINED_NAMES",
    "PRETRAINED_NAMES",
    "architecture_mismatch",
    "load_model",
    "load_pretrained",
    "pretrained_manifest",
    "save_model",
]

#: What a model file is (checked on loading).
FORMAT = "pemd-tutorial/registration-net"
FORMAT_VERSION = 1
#: Config fields that fix the network's shape and the meaning of its outputs: a file is refused for
#: a configuration that differs in any of them.
ARCHITECTURE_FIELDS = ("image_size", "radius", "label_step", "control_spacing", "channels", "head_channels",
                       "metric", "cost_smoothing", "head_residual")
#: The same for the paper experiment's network.
PAPER_ARCHITECTURE_FIELDS = ("patch", "step", "extractor_channels", "classifier_channels", "logit_scale")
#: The network classes a model file can hold: name -> (class, its configuration class, fields). The
#: one registry of network classes: a new network (a :class:`~pemd_tutorial.model.TwoHeadedNet`) is
#: one entry here.
NETWORKS = {
    "RegistrationNet": (RegistrationNet, Config, ARCHITECTURE_FIELDS),
    "ConcatNet": (ConcatNet, PaperConfig, PAPER_ARCHITECTURE_FIELDS),
}
#: Names of the shipped networks (the main job's method keys, then the paper experiment's rows).
PRETRAINED_NAMES = ("source", "mcd_l1", "mcd_swd", "mcd_pemd", "oracle")
PAPER_PRETRAINED_NAMES = tuple(f"paper/{row}" for row in PAPER_METHODS)
_PRETRAINED_DIR = "pretrained"


def save_model(
    model: RegistrationNet | ConcatNet, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and its configuration to one file (atomically).

    Args:
        model: a :class:`RegistrationNet` or :class:`ConcatNet` (on any device; the file holds CPU
            tensors).
        path: destination file (its folder is created).
        metadata: optional JSON-serialisable dict stored beside the weights (e.g. the method and
            seed), returned by :func:`load_model` as ``model.metadata``.

    Returns:
        The path written.

    Raises:
        TypeError: ``model`` is not one of the package's networks or ``metadata`` not a dict.
        ValueError: ``metadata`` is not JSON-serialisable.
    """
    if type(model).__name__ not in NETWORKS or not isinstance(model, NETWORKS[type(model).__name__][0]):
        raise TypeError(
            f"save_model() 'model' must be one of the package's networks ({', '.join(NETWORKS)}), got "
            f"{type(model).__name__}"
        )
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"save_model() 'metadata' must be a dict or None, got {type(metadata).__name__}")
    try:
        meta_json = json.dumps(metadata or {})
    except (TypeError, ValueError) as err:
        raise ValueError(f"save_model() 'metadata' must be JSON-serialisable: {err}") from err
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save_checkpoint(path, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "torch": str(torch.__version__),
        "network": type(model).__name__,
        "config_json": json.dumps(model.config.to_dict(), sort_keys=True), "metadata_json": meta_json,
        "state_dict": state,
    })


def architecture_mismatch(a, b, fields: tuple[str, ...]) -> list[str]:
    """The ``fields`` in which configuration ``a`` differs from ``b``, as ``"name=value (expected ...)"``."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{k}={da[k]!r} (expected {db[k]!r})" for k in fields if da[k] != db[k]]


def load_model(
    path: str | os.PathLike, config: Config | PaperConfig | None = None, *, device: str | torch.device = "cpu"
) -> RegistrationNet | ConcatNet:
    """Load a network written by :func:`save_model`.

    Args:
        path: the model file.
        config: optional configuration the network must fit: if any of
            :data:`ARCHITECTURE_FIELDS` differs (another label grid, image size, control spacing
            or network size), the file is refused.
        device: where the returned network lives.

    Returns:
        The network in eval mode, with ``.config`` (the file's configuration, ``device`` set to
        ``device``) and ``.metadata`` (the dict given to :func:`save_model`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a pemd-tutorial model file, or was written for another
            architecture than ``config`` (the message names the fields), or its weights do not fit.
        TypeError: ``config`` is not a Config (or a PaperConfig for a ConcatNet file).
    """
    path = Path(path)
    config_classes = tuple(cfg_cls for _, cfg_cls, _ in NETWORKS.values())
    if config is not None and not isinstance(config, config_classes):
        raise TypeError(
            f"load_model() 'config' must be one of {', '.join(c.__name__ for c in config_classes)} or None, "
            f"got {type(config).__name__}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"load_model() model file not found: {str(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file, a pickle with code, another format
        raise ValueError(f"load_model() {str(path)!r} is not a readable model file ({err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(
            f"load_model() {str(path)!r} is not a pemd-tutorial model file (written by save_model)"
        )
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"load_model() {str(path)!r} has format version {state.get('format_version')!r}; "
            f"this package reads version {FORMAT_VERSION}"
        )
    network = state.get("network", "RegistrationNet")  # files written before ConcatNet could be saved
    if network not in NETWORKS:
        raise ValueError(f"load_model() {str(path)!r} holds an unknown network {network!r}")
    net_cls, cfg_cls, fields = NETWORKS[network]
    if config is not None and not isinstance(config, cfg_cls):
        raise TypeError(f"load_model() {str(path)!r} holds a {network}: 'config' must be a "
                        f"{cfg_cls.__name__}, got {type(config).__name__}")
    try:
        fields_json = json.loads(state["config_json"])
        file_cfg = cfg_cls.from_dict({**fields_json, "device": str(torch.device(device))})
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"load_model() {str(path)!r} holds an invalid configuration ({err})") from err
    if config is not None:
        bad = architecture_mismatch(file_cfg, config, fields)
        if bad:
            raise ValueError(
                f"load_model() {str(path)!r} was written for another network than 'config': " + ", ".join(bad)
            )
    model = net_cls(file_cfg)
    try:
        model.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise ValueError(
            f"load_model() the weights in {str(path)!r} do not fit its configuration ({err})"
        ) from err
    model.metadata = json.loads(state.get("metadata_json", "{}"))
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------
# The shipped networks
# --------------------------------------------------------------------------------------------


def pretrained_dir() -> Path:
    return Path(str(resources.files("pemd_tutorial") / _PRETRAINED_DIR))


def pretrained_manifest(experiment: str = "main") -> dict[str, Any]:
    """The manifest of the shipped networks: config, command, date, machine, files and metrics.

    Args:
        experiment: ``"main"`` (the dense networks) or ``"paper"`` (the patch networks).

    Raises:
        ValueError: an unknown ``experiment``.
        FileNotFoundError: the package was installed without its ``pretrained/`` data.
    """
    if experiment not in ("main", "paper"):
        raise ValueError(f"pretrained_manifest() 'experiment' must be 'main' or 'paper', got {experiment!r}")
    folder = pretrained_dir() if experiment == "main" else pretrained_dir() / "paper"
    path = folder / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained_manifest() {str(path)!r} is missing: reinstall pemd-tutorial with its package data "
            "or rebuild the networks with scripts/build_pretrained.py"
        )
    return json.loads(path.read_text())


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_pretrained(name: str, *, device: str | torch.device = "cpu") -> RegistrationNet | ConcatNet:
    """One of the shipped networks (the standard profile's seed 0).

    Args:
        name: one of :data:`PRETRAINED_NAMES` (``"source"``, ``"mcd_l1"``, ``"mcd_swd"``,
            ``"mcd_pemd"``, ``"oracle"``: the main job's dense networks) or of
            :data:`PAPER_PRETRAINED_NAMES` (``"paper/<row>"``: the paper experiment's patch
            networks of its T2w column).
        device: where the network lives.

    Returns:
        The network (eval mode) with ``.config`` and ``.metadata``; its metrics on the target test
        pairs are in ``pretrained_manifest(experiment)["networks"][row]["metrics"]``.

    Raises:
        ValueError: unknown ``name``, or the file's sha256 differs from the manifest's.
        FileNotFoundError: the weights file is missing.
    """
    if name not in PRETRAINED_NAMES + PAPER_PRETRAINED_NAMES:
        raise ValueError(f"load_pretrained() 'name' must be one of "
                         f"{list(PRETRAINED_NAMES + PAPER_PRETRAINED_NAMES)}, got {name!r}")
    experiment, _, row = name.rpartition("/")
    experiment = experiment or "main"
    manifest = pretrained_manifest(experiment)
    entry = manifest["networks"].get(row)
    if entry is None:
        raise FileNotFoundError(f"load_pretrained() the manifest lists no network {name!r}")
    folder = pretrained_dir() if experiment == "main" else pretrained_dir() / "paper"
    path = folder / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"load_pretrained() weights file not found: {str(path)!r}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ValueError(
            f"load_pretrained() {str(path)!r} has sha256 {digest[:12]}..., the manifest says "
            f"{entry['sha256'][:12]}...: the file is damaged or was replaced; rebuild with "
            "scripts/build_pretrained.py"
        )
    return load_model(path, device=device)
