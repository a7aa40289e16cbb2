"""The Ray engine: items run as Ray tasks on a cluster (or a local Ray started on demand).

- Order and memory: at most ``window`` tasks are in flight (default two per CPU of the cluster); results
  come back in input order, so the driver writes them exactly as the local engine would.
- Shared data is ``ray.put`` once per map and fetched by each worker once; ``prepare(shared)`` runs once
  per worker and map (a model, an index), not once per item.
- Faults: a task whose worker process dies is retried on another worker (``MAX_RETRIES``); the stage's
  own chunked, resumable writes cover a driver that dies.

Workers import clearset: on a cluster every node needs it installed (the same version as the driver).
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict, deque

from ..errors import ClearsetError, ParameterError, param
from .base import Engine

log = logging.getLogger("clearset")
MAX_RETRIES = 3
_CONTEXTS: OrderedDict = OrderedDict()  # per worker process: map id -> prepared state (the last two maps)


def _state(key: str, box: list, prepare):
    """The prepared state of map ``key`` in this worker, built on first use."""
    if key not in _CONTEXTS:
        import ray

        shared = ray.get(box[0]) if box else None
        _CONTEXTS[key] = prepare(shared) if prepare is not None else shared
        while len(_CONTEXTS) > 2:
            _CONTEXTS.popitem(last=False)
    _CONTEXTS.move_to_end(key)
    return _CONTEXTS[key]


def _run(fn, key, box, prepare, item):
    if key is None:
        return fn(item)
    return fn(_state(key, box, prepare), item)


class RayEngine(Engine):
    name = "ray"

    def __init__(self, address: str | None = None, *, cpus_per_task: float = 1, gpus_per_task: float = 0,
                 window: int | None = None, **init_options):
        """Join the cluster at ``address`` (or $RAY_ADDRESS), else start one here; ``init_options`` go to
        ``ray.init`` for a cluster started here (``num_cpus``, ``object_store_memory``...)."""
        try:
            import ray
        except ImportError:
            raise ParameterError(f"{param('engine')} ray needs Ray: pip install 'clearset[ray]'") from None
        self._owns = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                         **(init_options if address is None else {}))
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ClearsetError(f"{param('engine')} ray: cannot reach a Ray cluster at {address or 'RAY_ADDRESS'} "
                                    f"({str(e).splitlines()[0]}); start one with `ray start --head` or drop "
                                    f"{param('address')} to start a local one") from None
            self._owns = True
        self.ray = ray
        cpus = ray.cluster_resources().get("CPU", 1)
        self.window = window or max(2, int(2 * cpus / max(cpus_per_task, 1e-3)))
        self._task = ray.remote(_run).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task,
                                             max_retries=MAX_RETRIES)
        log.info("ray engine: %d CPUs, %s GPUs, %d tasks in flight", int(cpus),
                 ray.cluster_resources().get("GPU", 0), self.window)

    @property
    def parallel(self) -> bool:
        return True

    def map(self, fn, items, *, shared=None, prepare=None, threads=None):
        key = uuid.uuid4().hex if (shared is not None or prepare is not None) else None
        box = [self.ray.put(shared)] if shared is not None else []  # nested: each worker fetches it once
        pending: deque = deque()
        try:
            for item in items:
                pending.append(self._task.remote(fn, key, box, prepare, item))
                if len(pending) >= self.window:
                    yield self._get(pending.popleft())
            while pending:
                yield self._get(pending.popleft())
        finally:
            for ref in pending:
                self.ray.cancel(ref)

    def _get(self, ref):
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, ClearsetError):  # a user error on a worker: the one clear line, as locally
                raise e.cause from None
            raise

    def close(self) -> None:
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
        self._owns = False
