"""Multi-process training: start JAX's runtime, then ``train_(..., devices="all")``.

One process per machine (or per GPU), all running the same script. After
``initialize``, ``jax.devices()`` lists the devices of every process, and
``train_(..., devices="all")`` splits each global batch over all of them; XLA's
collectives (NCCL on GPUs, gloo on CPUs) combine the gradients. Feed each process its
part of the batches with ``DataLoader(..., shard=True)``. ``save`` writes from process 0
only. See ``docs/distributed.md``.
"""

import jax
import numpy as np

from . import _config
from .train._sharding import device_bytes

__all__ = [
    "initialize", "shutdown", "process_index", "process_count", "mean", "device_bytes",
]  # fmt: skip


def initialize(
    coordinator_address=None, num_processes=None, process_id=None, *, cpu_collectives="gloo",
    **kwargs,
):  # fmt: skip
    """initialize(coordinator_address=None, num_processes=None, process_id=None, *,
    cpu_collectives="gloo", **kwargs) → starts JAX's multi-process runtime.

    A thin wrapper of ``jax.distributed.initialize`` (the extra ``kwargs``, such as
    ``local_device_ids`` or ``initialization_timeout``, pass through). With no arguments
    JAX detects Slurm, Open MPI and Cloud TPU environments itself. For CPU devices it
    selects the ``cpu_collectives`` implementation (``"gloo"``; ``"mpi"`` also exists;
    ``None`` leaves JAX's setting), so that CPU processes can all-reduce, and turns JAX's
    asynchronous CPU dispatch back on (fluxjax turns it off for one device; collectives
    need it).

    Call it first, before any JAX computation (creating a model computes); in every
    process, e.g. ``initialize("10.0.0.1:1234", 2, 0)`` and ``initialize("10.0.0.1:1234",
    2, 1)`` in two processes, the coordinator being process 0's address and a free port.

    >>> import fluxjax.distributed as dist
    >>> dist.process_count()  # without initialize: one process
    1
    """
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    if _config.SYNC_CPU_DISPATCH and not _config.backends_started():
        # collectives across CPU devices can deadlock with synchronous dispatch
        jax.config.update("jax_cpu_enable_async_dispatch", True)
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
    except RuntimeError as e:
        if "before" in str(e) and hasattr(e, "add_note"):
            e.add_note(
                "fluxjax.distributed.initialize must run before anything computes with JAX: "
                "call it at the top of the script, before building the model"
            )
        raise


def shutdown() -> None:
    """shutdown() → ``jax.distributed.shutdown()``: leave the multi-process runtime."""
    jax.distributed.shutdown()


def process_index() -> int:
    """process_index() → this process's number, 0 .. ``process_count() - 1``."""
    return jax.process_index()


def process_count() -> int:
    """process_count() → the number of processes in the run (1 without ``initialize``)."""
    return jax.process_count()


def mean(x):
    """mean(x) → the average of ``x`` (a number or an array, the same shape in every
    process) over the processes of the run; ``x`` itself in a one-process run.

    Every process must call it (it is a collective), e.g. to report one validation loss
    for the whole run after each process evaluated its part of the data. Computed in
    float32 (JAX's default precision); a number gives a float, an array a NumPy array.

    >>> import fluxjax as fj
    >>> fj.distributed.mean(0.25)  # one process
    0.25
    """
    if jax.process_count() == 1:
        return x
    from jax.experimental import multihost_utils

    every = multihost_utils.process_allgather(np.asarray(x, np.float32))
    average = np.mean(every, axis=0, dtype=np.float32)
    return float(average) if np.ndim(x) == 0 and not isinstance(x, np.ndarray) else average
