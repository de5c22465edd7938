"""The in-process backend: units run one after another with the caller's own encoder."""
from __future__ import annotations

from typing import Any, Iterator, Sequence


class LocalBackend:
    name = "local"
    distributed = False

    def map(self, job: Any, encoder: Any, dataset: Any, units: Sequence[Any], progress: Any = None
            ) -> Iterator[tuple[Any, Any]]:
        """Run ``job`` on each unit in order; ``progress`` (a bar) is advanced by the job itself."""
        for unit in units:
            yield unit, job.run(encoder, dataset, unit, progress=progress)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}
