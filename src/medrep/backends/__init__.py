"""Where the per-chunk / per-batch work of extract, attack and explain runs: in this process or on Ray.

A *job* is a picklable description of the work (settings, fitted classifiers, pairings) with one method,
``job.run(encoder, dataset, unit, progress=None) -> result``, that computes one *unit* (an embedding
chunk, an attack batch, an explanation batch).  ``backend.map(job, encoder, dataset, units)`` yields
``(unit, result)`` exactly once per unit, in any order; :func:`medrep.backends.units.run_units` (the one
resumable loop of extract, attack and explain) loads the finished units, saves each new one as it arrives and
hands all back for the caller to aggregate, so both backends produce the same files.

- :class:`~medrep.backends.local.LocalBackend` (the default) runs the units in order, in-process.
- :class:`~medrep.backends.ray_backend.RayBackend` shards them over Ray actors that each re-create the
  encoder once from its spec (``ray`` is an optional extra: ``pip install 'medrep[ray]'``).

``use_backend(backend)`` makes a backend the default of every analysis inside the ``with`` block, which
is how ``medrep audit --backend ray`` reaches the analyses the audit runs.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Protocol, Sequence

from medrep.backends.local import LocalBackend
from medrep.errors import MedrepError, Param

BACKENDS = ("local", "ray")
RAY_INSTALL_HINT = "the ray backend needs Ray, which is not installed: pip install 'medrep[ray]' (or 'ray[data]>=2.9')"


class Backend(Protocol):
    name: str

    def map(self, job: Any, encoder: Any, dataset: Any, units: Sequence[Any], progress: Any = None
            ) -> Iterator[tuple[Any, Any]]:  # pragma: no cover - protocol
        ...


_CURRENT: list[Any] = []


def get_backend(name: str | Any = "local", address: str | None = None, workers: int | None = None,
                device: str = "auto") -> Any:
    """``"local"`` / ``"ray"`` (or a backend object, returned as is) → a backend."""
    if name is None:
        name = "local"
    if not isinstance(name, str):
        return name
    key = name.lower()
    if key not in BACKENDS:
        raise MedrepError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})", where=Param("backend"))
    if key == "local":
        if address is not None:
            raise MedrepError("a Ray address needs --backend ray", where=Param("ray_address"))
        return LocalBackend()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise MedrepError(RAY_INSTALL_HINT, where=Param("backend")) from None
    from medrep.backends.ray_backend import RayBackend

    return RayBackend(address=address, workers=workers, device=device)


def current_backend() -> Any:
    """The backend of the innermost :func:`use_backend` block, else a :class:`LocalBackend`."""
    return _CURRENT[-1] if _CURRENT else LocalBackend()


def resolve_backend(backend: Any) -> Any:
    """An analysis's ``backend=`` argument: None → the current default; a name → that backend."""
    if backend is None:
        return current_backend()
    return get_backend(backend) if isinstance(backend, str) else backend


@contextmanager
def use_backend(backend: Any) -> Iterator[Any]:
    backend = resolve_backend(backend)
    _CURRENT.append(backend)
    try:
        yield backend
    finally:
        _CURRENT.pop()


__all__ = ["BACKENDS", "Backend", "LocalBackend", "current_backend", "get_backend", "resolve_backend", "use_backend",
           "RAY_INSTALL_HINT"]
