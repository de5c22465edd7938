"""The one resumable unit loop under extraction chunks, attack batches and explanation batches: the units
already finished are loaded, the rest run on the backend (in this process or on Ray), and each result is
saved as it arrives, whichever worker computed it; the caller reassembles them in unit order."""
from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence


def run_units(job: Any, encoder: Any, dataset: Any, units: Sequence[Hashable], backend: Any, *,
              load: Callable[[Any], Any], save: Callable[[Any, Any], None], progress: Any,
              size: Callable[[Any], int]) -> dict[Any, Any]:
    """{unit: result} for every unit of ``job``.

    ``load(unit)``: the finished result, or None when it must be computed.  ``save(unit, result)`` runs once per
    computed unit as soon as the backend yields it (an interruption after it loses nothing).  ``progress`` is
    advanced by ``size(unit)`` for a loaded unit; the job advances it for the units it computes.
    """
    results: dict[Any, Any] = {}
    todo = []
    for unit in units:
        got = load(unit)
        if got is None:
            todo.append(unit)
        else:
            results[unit] = got
            progress.advance(size(unit))
    for unit, result in backend.map(job, encoder, dataset, todo, progress=progress):
        save(unit, result)
        results[unit] = result
    return results
