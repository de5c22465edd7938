"""The one resumable unit loop: finished units are loaded, not recomputed; each computed unit is saved as it
arrives, so an interruption keeps every unit before it; the results come back for every unit."""
from __future__ import annotations

import pytest

from medrep.backends.local import LocalBackend
from medrep.backends.units import run_units


class _Squares:
    """A job whose unit u is u²; it records which units it computed."""

    def __init__(self):
        self.ran: list[int] = []

    def run(self, encoder, dataset, unit, progress=None):
        self.ran.append(unit)
        progress.advance(1)
        return unit * unit


class _Bar:
    def __init__(self):
        self.done = 0

    def advance(self, k):
        self.done += k


def test_finished_units_are_loaded_and_the_rest_computed_and_saved():
    store = {1: 1, 3: 9}  # units finished by an earlier run
    job, bar, saved = _Squares(), _Bar(), []
    out = run_units(job, None, None, range(5), LocalBackend(), load=store.get, progress=bar, size=lambda u: 1,
                    save=lambda u, r: saved.append((u, r)))
    assert out == {u: u * u for u in range(5)}
    assert job.ran == [0, 2, 4] and saved == [(0, 0), (2, 4), (4, 16)]
    assert bar.done == 5  # loaded units by their size, computed ones by the job


def test_an_interruption_keeps_every_unit_saved_before_it():
    store: dict[int, int] = {}

    def save(u, r):
        store[u] = r
        if u == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_units(_Squares(), None, None, range(5), LocalBackend(), load=store.get, save=save, progress=_Bar(),
                  size=lambda u: 1)
    job = _Squares()
    out = run_units(job, None, None, range(5), LocalBackend(), load=store.get, save=store.__setitem__, progress=_Bar(),
                    size=lambda u: 1)
    assert job.ran == [3, 4] and out == {u: u * u for u in range(5)}
