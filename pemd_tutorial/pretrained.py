"""Trained networks in files: :func:`save_model`, :func:`load_model` and the shipped networks.

A model file holds the weights of a :class:`~pemd_tutorial.model.RegistrationNet` together with
the :class:`~pemd_tutorial.config.Config` it was built and trained with (as JSON), in one
``torch.save`` file that loads with ``weights_only=True`` (no arbitrary pickles). It is written
atomically (:func:`pemd_tutorial.loop.save_checkpoint`).

The package ships the standard profile's seed-0 networks of the main job (source only, MCD-L1,
MCD-SWD, MCD-pEMD, oracle) in ``pemd_tutorial/pretrained/`` with a ``manifest.json`` (the
configuration, the command that made them, the sha256 of every file and each network's metrics
on the target test pairs). :func:`load_pretrained` returns one of them after checking its sha256;
``scripts/build_pretrained.py`` rebuilds them.

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

from pemd_tutorial.config import Config
from pemd_tutorial.loop import save_checkpoint
from pemd_tutorial.model import RegistrationNet

__all__ = [
    "ARCHITECTURE_FIELDS",
    "PRETRAINED_NAMES",
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
                       "metric", "cost_smoothing")
#: Names of the shipped networks (the main job's method keys).
PRETRAINED_NAMES = ("source", "mcd_l1", "mcd_swd", "mcd_pemd", "oracle")
_PRETRAINED_DIR = "pretrained"


def save_model(
    model: RegistrationNet, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and its configuration to one file (atomically).

    Args:
        model: a :class:`RegistrationNet` (on any device; the file holds CPU tensors).
        path: destination file (its folder is created).
        metadata: optional JSON-serialisable dict stored beside the weights (e.g. the method and
            seed), returned by :func:`load_model` as ``model.metadata``.

    Returns:
        The path written.

    Raises:
        TypeError: ``model`` is not a RegistrationNet or ``metadata`` not a dict.
        ValueError: ``metadata`` is not JSON-serialisable.
    """
    if not isinstance(model, RegistrationNet):
        raise TypeError(f"save_model() 'model' must be a RegistrationNet, got {type(model).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"save_model() 'metadata' must be a dict or None, got {type(metadata).__name__}")
    try:
        meta_json = json.dumps(metadata or {})
    except (TypeError, ValueError) as err:
        raise ValueError(f"save_model() 'metadata' must be JSON-serialisable: {err}") from err
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save_checkpoint(path, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "torch": str(torch.__version__),
        "config_json": json.dumps(model.config.to_dict(), sort_keys=True), "metadata_json": meta_json,
        "state_dict": state,
    })


def _architecture_mismatch(a: Config, b: Config) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    return [f"{k}={da[k]!r} (expected {db[k]!r})" for k in ARCHITECTURE_FIELDS if da[k] != db[k]]


def load_model(
    path: str | os.PathLike, config: Config | None = None, *, device: str | torch.device = "cpu"
) -> RegistrationNet:
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
        TypeError: ``config`` is not a Config.
    """
    path = Path(path)
    if config is not None and not isinstance(config, Config):
        raise TypeError(f"load_model() 'config' must be a Config or None, got {type(config).__name__}")
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
    try:
        file_cfg = Config.from_dict({**json.loads(state["config_json"]), "device": str(torch.device(device))})
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"load_model() {str(path)!r} holds an invalid configuration ({err})") from err
    if config is not None:
        bad = _architecture_mismatch(file_cfg, config)
        if bad:
            raise ValueError(
                f"load_model() {str(path)!r} was written for another network than 'config': " + ", ".join(bad)
            )
    model = RegistrationNet(file_cfg)
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


def _pretrained_dir() -> Path:
    return Path(str(resources.files("pemd_tutorial") / _PRETRAINED_DIR))


def pretrained_manifest() -> dict[str, Any]:
    """The manifest of the shipped networks: config, command, date, machine, files and metrics.

    Raises:
        FileNotFoundError: the package was installed without its ``pretrained/`` data.
    """
    path = _pretrained_dir() / "manifest.json"
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


def load_pretrained(name: str, *, device: str | torch.device = "cpu") -> RegistrationNet:
    """One of the shipped networks (the standard profile's seed 0 of the main job).

    Args:
        name: one of :data:`PRETRAINED_NAMES` (``"source"``, ``"mcd_l1"``, ``"mcd_swd"``,
            ``"mcd_pemd"``, ``"oracle"``).
        device: where the network lives.

    Returns:
        The network (eval mode) with ``.config`` and ``.metadata``; its metrics on the target test
        pairs are in ``pretrained_manifest()["networks"][name]["metrics"]``.

    Raises:
        ValueError: unknown ``name``, or the file's sha256 differs from the manifest's.
        FileNotFoundError: the weights file is missing.
    """
    if name not in PRETRAINED_NAMES:
        raise ValueError(f"load_pretrained() 'name' must be one of {list(PRETRAINED_NAMES)}, got {name!r}")
    manifest = pretrained_manifest()
    entry = manifest["networks"].get(name)
    if entry is None:
        raise FileNotFoundError(f"load_pretrained() the manifest lists no network {name!r}")
    path = _pretrained_dir() / entry["file"]
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
