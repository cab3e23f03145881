"""Writing a folder of results all at once: everything goes to a staging folder first and is moved
into the output folder only when all of it was written, so an error leaves nothing half-written
(:func:`pemd_tutorial.register` uses it; single JSON files have :func:`pemd_tutorial.jsonio.write_json`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["publish", "staging_folder"]


def staging_folder(out: str | os.PathLike | None, who: str) -> Path | None:
    """A new staging folder beside ``out`` (``None`` for ``out=None``); errors name ``who`` and the folder."""
    if out is None:
        return None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{who} output folder '{out}' exists and is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    except OSError as err:
        raise ValueError(f"{who} cannot write to the output folder '{out}' ({err.strerror})") from None


def publish(staging: Path, out: Path) -> dict[str, Path]:
    """Move everything from ``staging`` into ``out`` (created), replacing files of the same name."""
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for src in sorted(staging.rglob("*")):
        if src.is_dir():
            continue
        rel = src.relative_to(staging)
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        files[str(rel)] = dst
    return files
