"""Ray backend: units sharded over a pool of Ray actors, each holding one copy of the encoder.

Each actor re-creates the encoder once from its spec (``encoder.load_spec``, set by ``load_encoder``) and
checks that the weights fingerprint matches the caller's; an encoder that has no spec, or whose spec
does not reproduce it (random initialisation, a local path the workers cannot see), is put in the
object store once and the actors adopt that copy instead.  The dataset object (lazy for files,
in-memory tensors for phantoms / npz) and the job travel through the object store once per call; an
actor keeps the latest of each.  The pool lives as long as the backend (``close()`` ends it) and is
reused by every call with the same encoder, so an audit's analyses load each model once per worker.

Robustness: actors are started with ``max_restarts`` and ``max_task_retries``, so Ray itself restarts a
killed worker and re-runs the units it held; a unit whose actor is gone for good is resubmitted to a
fresh actor (at most ``max_attempts`` times).  Results are keyed by unit and the caller receives each
unit exactly once, so no item is lost or duplicated.  At most ``queue_depth`` units wait per actor:
results are consumed (written to the cache / partial files) as they arrive, memory stays flat.

GPUs: when the cluster has GPUs (and ``device`` is not ``cpu``) each actor asks for one (a fraction
when there are more workers than GPUs) and runs on ``cuda``; otherwise on the CPU, one core each.
"""
from __future__ import annotations

import copy
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import ray

from medrep.errors import MedrepError, Param

_ENV_KEYS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_HUB_CACHE", "TORCH_HOME", "MEDREP_CACHE",
             "OPEN_CLIP_CACHE")


@dataclass
class EncoderRecipe:
    """How a worker obtains the encoder: from its spec, or from a CPU copy in the object store."""

    spec: dict[str, Any] | None
    fingerprint: str
    device: str = "auto"
    shipped: Any = None  # ObjectRef of a CPU copy of the encoder
    env: dict[str, str] = field(default_factory=dict)

    def build(self):
        import torch

        from medrep.models import load_encoder

        if self.shipped is not None:
            encoder = ray.get(self.shipped)
        else:
            encoder = load_encoder(self.spec["spec"], trust_remote_code=self.spec.get("trust_remote_code", False))
        if self.device == "auto":
            device = torch.device("cuda") if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")
        elif str(self.device).startswith("cuda"):
            device = torch.device("cuda")  # the GPU Ray gave this actor (it sees only that one)
        else:
            device = torch.device(self.device)
        encoder = encoder.to(device)
        return encoder, encoder.fingerprint == self.fingerprint


class _WrongWeights(Exception):
    """A worker whose encoder (re-created from the spec) is not the caller's: it must adopt the shipped copy."""


class _Worker:
    """One actor: builds the encoder once; keeps the latest dataset and job it was sent (one copy each)."""

    def __init__(self, recipe: EncoderRecipe):
        self.error: BaseException | None = None
        self.encoder = None
        self.same = False
        self._data: tuple[str, Any] = ("", None)
        self._job: tuple[str, Any] = ("", None)
        try:
            os.environ.update(recipe.env)
            os.environ["MEDREP_QUIET"] = "1"
            import medrep  # noqa: F401  (repairs torchvision before timm is imported)

            self.encoder, self.same = recipe.build()
        except BaseException as err:  # reported by ready()/run() as an ordinary task error, not a dead actor
            self.error = err

    def ready(self) -> tuple[int, bool, str]:
        if self.error is not None:
            raise self.error
        return os.getpid(), self.same, str(self.encoder.device)

    def adopt(self, box: list[Any]) -> int:
        """Take the caller's weights (a CPU copy of its encoder) when the spec did not reproduce them."""
        if self.error is not None:
            raise self.error
        device = self.encoder.device
        self.encoder, self.same = ray.get(box[0]).to(device), True
        return os.getpid()

    @staticmethod
    def _fetch(slot: tuple[str, Any], box: list[Any]) -> tuple[str, Any]:
        key = box[0].hex()
        return slot if slot[0] == key else (key, ray.get(box[0]))

    def run(self, job_box: list[Any], data_box: list[Any], unit: Any) -> tuple[int, Any]:
        """``job_box`` / ``data_box``: one-element lists holding object refs (fetched once, then reused)."""
        if self.error is not None:
            raise self.error
        if not self.same:  # restarted after a crash: it rebuilt the encoder from the spec, which differs
            raise _WrongWeights(os.getpid())
        self._job = self._fetch(self._job, job_box)
        self._data = self._fetch(self._data, data_box)
        return os.getpid(), self._job[1].run(self.encoder, self._data[1], unit)


_RemoteWorker = ray.remote(_Worker)


def _local_copy(encoder):
    """A CPU copy of the encoder for the object store (the encoder itself when it is on the CPU)."""
    if encoder.device.type == "cpu":
        return encoder
    return copy.deepcopy(encoder).cpu()


class RayBackend:
    name = "ray"
    distributed = True

    def __init__(self, address: str | None = None, workers: int | None = None, device: str = "auto",
                 cpus_per_worker: float = 1.0, queue_depth: int = 2, max_restarts: int = 3, max_task_retries: int = 3,
                 max_attempts: int = 4):
        if workers is not None and workers < 1:
            raise MedrepError("must be at least 1", where=Param("ray_workers"))
        self.address = address
        self.workers = workers
        self.device = device or "auto"
        self.cpus_per_worker = cpus_per_worker
        self.queue_depth = max(1, queue_depth)
        self.max_restarts = max_restarts
        self.max_task_retries = max_task_retries
        self.max_attempts = max_attempts
        self.live_pids: list[int] = []  # pids of the current pool (tests kill one of them)
        self.stats: dict[str, Any] = {}
        self._pool: dict[str, Any] | None = None

    # -- cluster ---------------------------------------------------------------------------------
    def connect(self) -> None:
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "ignore_reinit_error": True, "log_to_driver": True}
        if self.address:
            kwargs["address"] = self.address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = Param("ray_address") if self.address else Param("backend")
            raise MedrepError(f"cannot start or reach a Ray cluster ({str(err).splitlines()[0]})", where=where) from err

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "address": self.address, "workers": self.workers}
        if ray.is_initialized():
            res = ray.cluster_resources()
            out["cluster"] = {"CPU": res.get("CPU", 0), "GPU": res.get("GPU", 0)}
        return out

    def _pool_shape(self) -> tuple[int, float]:
        res = ray.cluster_resources()
        gpus = float(res.get("GPU", 0)) if not str(self.device).startswith("cpu") else 0.0
        if str(self.device).startswith("cuda") and gpus <= 0:
            raise MedrepError("the Ray cluster has no GPUs; use --device auto or cpu with --backend ray", where=Param("device"))
        if self.workers is not None:
            n = self.workers
        elif gpus >= 1:
            n = int(gpus)
        else:
            n = max(1, int(float(res.get("CPU", 1)) // self.cpus_per_worker))
        n = max(1, n)
        per_gpu = min(1.0, gpus / n) if gpus > 0 else 0.0
        return n, per_gpu

    # -- the pool ----------------------------------------------------------------------------------
    def _recipe(self, encoder, shipped=None) -> EncoderRecipe:
        spec = getattr(encoder, "load_spec", None)
        if spec is not None:
            spec = dict(spec)
            if os.path.exists(spec["spec"]):  # a checkpoint path: absolute, whatever the workers' directory
                spec["spec"] = os.path.abspath(spec["spec"])
        env = {k: os.environ[k] for k in _ENV_KEYS if k in os.environ}
        return EncoderRecipe(spec=spec, fingerprint=encoder.fingerprint, device=self.device, shipped=shipped, env=env)

    def _start_actors(self, recipe: EncoderRecipe, n: int, gpus: float) -> list[Any]:
        opts = {"num_cpus": self.cpus_per_worker, "num_gpus": gpus, "max_restarts": self.max_restarts,
                "max_task_retries": self.max_task_retries}
        return [_RemoteWorker.options(**opts).remote(recipe) for _ in range(n)]

    def _pool_for(self, encoder) -> dict[str, Any]:
        """The actors holding ``encoder`` (kept between calls: an audit's analyses share one pool per model)."""
        fingerprint = encoder.fingerprint
        if self._pool is not None and self._pool["fingerprint"] == fingerprint:
            return self._pool
        self.close()
        n, gpus = self._pool_shape()
        recipe = self._recipe(encoder)
        pool: dict[str, Any] = {"fingerprint": fingerprint, "gpus": gpus, "shipped": None}
        if recipe.spec is None:  # no spec to re-create it from: every worker gets the caller's copy
            pool["shipped"] = [ray.put(_local_copy(encoder))]
            recipe = self._recipe(encoder, pool["shipped"][0])
        pool["recipe"] = recipe
        pool["actors"] = self._start_actors(recipe, n, gpus)
        self._pool = pool
        infos = self._ready(pool["actors"])
        wrong = [i for i, (_, same, _) in enumerate(infos) if not same]
        if wrong:  # the spec does not reproduce the caller's weights (random initialisation, another file)
            self._ship(encoder, pool, wrong)
        pool["pids"] = [pid for pid, _, _ in infos]
        pool["devices"] = [dev for _, _, dev in infos]
        return pool

    def _ship(self, encoder, pool: dict[str, Any], slots: list[int]) -> None:
        if pool["shipped"] is None:
            pool["shipped"] = [ray.put(_local_copy(encoder))]
        try:
            ray.get([pool["actors"][i].adopt.remote(pool["shipped"]) for i in slots])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the workers (a later call starts new ones)."""
        if self._pool is not None:
            for a in self._pool["actors"]:
                try:
                    ray.kill(a, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        self._pool = None
        self.live_pids = []

    def _ready(self, actors: list[Any]) -> list[tuple[int, bool, str]]:
        try:
            return [self._get(a.ready.remote()) for a in actors]
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _unwrap(err: "ray.exceptions.RayTaskError") -> BaseException:
        """The error a task raised, as the caller should see it (a MedrepError as itself)."""
        cause = getattr(err, "cause", None)
        return cause if isinstance(cause, MedrepError) else err.as_instanceof_cause()

    @classmethod
    def _get(cls, ref):
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            raise cls._unwrap(err) from None

    def map(self, job: Any, encoder: Any, dataset: Any, units: Sequence[Any], progress: Any = None
            ) -> Iterator[tuple[Any, Any]]:
        units = list(units)
        if not units:
            return
        self.connect()
        pool = self._pool_for(encoder)
        boxes = ([ray.put(job)], [ray.put(dataset)])
        self.live_pids = list(pool["pids"])
        self.stats = {"workers": len(pool["actors"]), "gpus_per_worker": pool["gpus"], "devices": pool["devices"],
                      "weights_shipped": pool["shipped"] is not None, "resubmitted": 0, "duplicates": 0, "replaced_workers": 0,
                      "initial_pids": list(pool["pids"]), "pids": set(), "units": len(units)}
        try:
            yield from self._drive(job, units, pool, boxes, progress)
        except BaseException:
            self.close()  # units may still be running: do not leave them to a later call
            raise

    def _drive(self, job, units, pool, boxes, progress) -> Iterator[tuple[Any, Any]]:
        actors = pool["actors"]
        queue = deque(range(len(units)))
        generation = [0] * len(actors)
        pending: dict[Any, tuple[int, int, int]] = {}  # ref → (actor slot, its generation, unit index)
        attempts = [0] * len(units)
        done = [False] * len(units)

        def submit(slot: int) -> None:
            if queue:
                k = queue.popleft()
                pending[actors[slot].run.remote(boxes[0], boxes[1], units[k])] = (slot, generation[slot], k)

        for slot in range(len(actors)):
            for _ in range(self.queue_depth):
                submit(slot)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            slot, gen, k = pending.pop(ref)
            try:
                pid, result = ray.get(ref)
            except ray.exceptions.RayTaskError as err:
                cause = getattr(err, "cause", None)
                if isinstance(cause, _WrongWeights) and pool["shipped"] is not None:
                    # restarted from the spec after a crash: give it the caller's weights, run the unit again
                    ray.get(actors[slot].adopt.remote(pool["shipped"]))
                    self.stats["readopted"] = self.stats.get("readopted", 0) + 1
                    queue.appendleft(k)
                    submit(slot)
                    continue
                raise self._unwrap(err) from None
            except ray.exceptions.RayError as err:  # the worker died for good, or its node went away
                attempts[k] += 1
                if attempts[k] >= self.max_attempts:
                    raise MedrepError(f"unit {units[k]!r} failed on {attempts[k]} workers in a row ({err})",
                                      where=Param("backend")) from err
                if gen == generation[slot]:  # replace the lost actor once; its other units come back here too
                    try:
                        ray.kill(actors[slot], no_restart=True)
                    except Exception:  # noqa: BLE001
                        pass
                    actors[slot] = self._start_actors(pool["recipe"], 1, pool["gpus"])[0]
                    generation[slot] += 1
                    self.stats["replaced_workers"] += 1
                queue.appendleft(k)
                self.stats["resubmitted"] += 1
                submit(slot)
                continue
            self.stats["pids"].add(pid)
            if done[k]:  # pragma: no cover - a unit is submitted again only after its ref failed
                self.stats["duplicates"] += 1
            else:
                done[k] = True
                if progress is not None:
                    progress.advance(job.unit_size(units[k]))
                yield units[k], result
            submit(slot)
        missing = [units[k] for k in range(len(units)) if not done[k]]
        if missing:  # pragma: no cover - defensive: the loop above only ends when every unit came back
            raise MedrepError(f"{len(missing)} unit(s) never came back from the Ray workers", where=Param("backend"))

    @property
    def restarted(self) -> bool:
        """Whether some result came from a worker process that was not in the initial pool."""
        return bool(set(self.stats.get("pids", ())) - set(self.stats.get("initial_pids", ())))
