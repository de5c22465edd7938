"""OUT/partial/: finished units of an interrupted run, so `--resume` continues it.

Each unit is a set of checksummed .npy arrays plus a JSON record written last (a unit counts as done
only once all its arrays are in place).  ``run.json`` holds the digest of the run's settings, model
and data: a resume with anything different is refused rather than mixing results.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medrep.errors import MedrepError, Param
from medrep.io import load_array_checked, remove_stale_temporaries, save_array_checked, write_json_atomic


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_@-]{0,80}")


class PartialStore:
    def __init__(self, out_dir: str | Path | None, config_digest: str, resume: bool):
        self.dir = Path(out_dir) / "partial" if out_dir is not None else None
        self.digest = config_digest
        self.resume = resume
        if self.dir is None:
            if resume:
                raise MedrepError("resuming needs the output directory of the interrupted run", where=Param("resume"))
            return
        remove_stale_temporaries(self.dir)  # what a killed writer left half-written
        marker = self.dir / "run.json"
        if marker.exists():
            try:
                old = json.loads(marker.read_text()).get("config_digest")
            except (OSError, ValueError) as err:
                raise MedrepError(f"unreadable ({err}); delete {self.dir} to start over", where=str(marker)) from err
            if not resume:
                raise MedrepError("holds partial results of an earlier run; pass --resume to continue it or choose "
                                  "another --out", where=str(self.dir))
            if old != config_digest:
                raise MedrepError("partial results come from a different model, data or settings; resume with the "
                                  "same arguments or choose another --out", where=str(self.dir))
        else:
            write_json_atomic(marker, {"config_digest": config_digest})

    def _file(self, name: str, index: int, key: str) -> Path:
        # named after the key where that is a plain file name, else numbered: no key can reach outside the folder
        return self.dir / (f"{name}.{key}.npy" if _PLAIN.fullmatch(key) else f"{name}.{index}.npy")

    def load(self, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The unit's arrays and extra record, or None when absent, not resuming, or damaged (then warned)."""
        if self.dir is None or not self.resume:
            return None
        meta_path = self.dir / f"{name}.json"
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("config_digest") != self.digest:
                raise MedrepError("written under other settings", where=str(meta_path))
            arrays = {k: load_array_checked(self._file(name, i, k), d) for i, (k, d) in enumerate(meta["arrays"])}
            return arrays, meta.get("extra") or {}
        except (MedrepError, OSError, ValueError, KeyError, TypeError) as err:
            warnings.warn(f"recomputing damaged partial result {meta_path}: {err}", stacklevel=2)
            return None

    def save(self, name: str, arrays: dict[str, np.ndarray], extra: dict[str, Any] | None = None) -> None:
        if self.dir is None:
            return
        digests = [(k, save_array_checked(self._file(name, i, k), v)) for i, (k, v) in enumerate(arrays.items())]
        write_json_atomic(self.dir / f"{name}.json", {"config_digest": self.digest, "arrays": digests, "extra": extra})


def discard_partials(out_dir: str | Path) -> None:
    """Remove OUT/partial/ once the final outputs are written: a finished run needs no resuming, and a
    rerun into the same folder then starts afresh instead of being refused."""
    import shutil

    shutil.rmtree(Path(out_dir) / "partial", ignore_errors=True)
