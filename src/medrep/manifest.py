"""Run manifests: what ran, with which versions, seeds, arguments and cache keys (no patient data)."""
from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from medrep.io import write_json_atomic

_LIBRARIES = ("torch", "numpy", "scipy", "scikit-learn", "scikit-image", "timm", "transformers", "open_clip_torch",
              "pydicom", "pyarrow", "umap-learn", "ray")


def library_versions() -> dict[str, str]:
    out = {}
    for lib in _LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return out


def build_manifest(command: str, arguments: dict[str, Any], seeds: dict[str, int] | None = None,
                   cache_keys: dict[str, str] | None = None, skipped: list[dict[str, str]] | None = None,
                   **extra: Any) -> dict[str, Any]:
    from medrep import __version__

    return {
        "medrep_version": __version__,
        "command": command,
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(arguments.items())},
        "seeds": seeds or {},
        "cache_keys": cache_keys or {},
        "skipped": skipped or [],
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "libraries": library_versions(),
        **extra,
    }


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    return write_json_atomic(Path(out_dir) / "manifest.json", manifest)
