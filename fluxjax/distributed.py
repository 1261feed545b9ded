"""Multi-process training: start JAX's runtime, then ``train_(..., devices="all")``.

One process per machine (or per GPU), all running the same script. After
``initialize``, ``jax.devices()`` lists the devices of every process, and
``train_(..., devices="all")`` splits each global batch over all of them; XLA's
collectives (NCCL on GPUs, gloo on CPUs) combine the gradients. Feed each process its
part of the batches with ``DataLoader(..., shard=True)``. ``save`` writes from process 0
only; ``train_(checkpoint=)`` writes orbax checkpoints from every process. ``mean``
averages a metric over the processes. A dead or failing process ends the run within the
heartbeat timeout (10 s by default). See ``docs/distributed.md``.
"""

import contextlib
import os
import sys
import time

import jax
import numpy as np

from . import _config
from .tracker._compat import distributed_runtime
from .train._sharding import device_bytes

__all__ = [
    "initialize", "shutdown", "process_index", "process_count", "mean", "device_bytes",
]  # fmt: skip


HEARTBEAT_SECONDS = 10
"""fluxjax's default ``heartbeat_timeout_seconds``: a process that stops sending
heartbeats this long is taken for dead and every other process aborts (JAX's own
default, 100 s, let a survivor run on for ~100 s)."""

_WAIT_MS = 60_000  # for the other processes' counts
_LINGER_S = 1.0  # process 0's pause before it exits on an error (see _exiting)


def initialize(
    coordinator_address=None, num_processes=None, process_id=None, *, cpu_collectives="gloo",
    heartbeat_timeout_seconds=HEARTBEAT_SECONDS, exit_on_error=True, **kwargs,
):  # fmt: skip
    """initialize(coordinator_address=None, num_processes=None, process_id=None, *,
    cpu_collectives="gloo", heartbeat_timeout_seconds=10, exit_on_error=True, **kwargs)
    → starts JAX's multi-process runtime.

    A thin wrapper of ``jax.distributed.initialize`` (other ``kwargs``, such as
    ``local_device_ids``, pass through; with no arguments JAX detects Slurm, Open MPI and
    Cloud TPU). For CPU devices it selects ``cpu_collectives`` (``"gloo"``; ``"mpi"``;
    ``None`` leaves JAX's setting) and turns JAX's asynchronous CPU dispatch back on
    (fluxjax turns it off for one device), so that CPU processes can all-reduce.

    Failures end the whole run promptly: a process silent for ``heartbeat_timeout_seconds``
    (killed, its machine lost) makes every other one abort with a non-zero status; with
    ``exit_on_error`` an uncaught exception ends its process at once (status 1, after the
    traceback) rather than waiting up to 300 s at JAX's shutdown barrier. Every process
    must pass the same ``num_processes``, else ``ValueError`` (the coordinator's too).

    Call it first, before any JAX computation, once, in every process, e.g.
    ``initialize("10.0.0.1:1234", 2, 0)`` and ``initialize("10.0.0.1:1234", 2, 1)``.

    >>> import fluxjax.distributed as dist
    >>> dist.process_count()  # without initialize: one process
    1
    """
    _refuse_late_or_second_call()
    with _cpu_settings(cpu_collectives):  # a failed start puts them back
        jax.distributed.initialize(
            coordinator_address, num_processes, process_id,
            heartbeat_timeout_seconds=heartbeat_timeout_seconds, **kwargs,
        )  # fmt: skip
    if exit_on_error:
        sys.excepthook = _exiting(sys.excepthook)
    _check_counts()


@contextlib.contextmanager
def _cpu_settings(cpu_collectives):
    """Inside the block, JAX's CPU collectives are ``cpu_collectives`` (None: as they are)
    and CPU dispatch is asynchronous (collectives across CPU devices can deadlock with
    synchronous dispatch); if the block raises, the settings are put back."""
    settings = {"jax_cpu_collectives_implementation": cpu_collectives}
    if _config.SYNC_CPU_DISPATCH:
        settings["jax_cpu_enable_async_dispatch"] = True
    before = {name: jax.config.values[name] for name in settings}
    try:
        for name, value in settings.items():
            if value is not None:
                jax.config.update(name, value)
        yield
    except BaseException:
        for name, value in before.items():  # a failed start changes nothing
            jax.config.update(name, value)
        raise


def _refuse_late_or_second_call():
    if jax.distributed.is_initialized():
        state = _runtime()
        raise RuntimeError(
            f"the multi-process runtime is already running in this process (process "
            f"{state.process_id} of {state.num_processes}): fluxjax.distributed.initialize "
            f"(or jax.distributed.initialize) was already called; call it once, at the top "
            f"of the script"
        )
    if _config.backends_started():
        raise RuntimeError(
            "fluxjax.distributed.initialize must run before anything computes with JAX "
            "(building a model, jax.devices(), any array operation): call it at the top "
            "of the script, before building the model"
        )


def _runtime():
    return distributed_runtime()


def _check_counts():
    """Every process says how many processes it was told; each compares with process 0
    (whose count the coordination service has), and process 0 with everyone. All meet at
    a barrier before any raises, so that process 0 (which hosts the service) cannot exit
    before the others have read its count."""
    state = _runtime()
    me, count, client = state.process_id, state.num_processes, state.client
    client.key_value_set(f"fluxjax/num_processes/{me}", str(count))
    others = range(count) if me == 0 else [0]
    said = {k: int(client.blocking_key_value_get(f"fluxjax/num_processes/{k}", _WAIT_MS))
            for k in others}  # fmt: skip
    client.wait_at_barrier("fluxjax/num_processes", _WAIT_MS)
    for k, theirs in said.items():
        if theirs != count:
            raise ValueError(
                f"process {me} was started with num_processes={count}, but process {k} "
                f"with num_processes={theirs}: every process must pass the same count (the "
                f"coordinator runs {count if me == 0 else theirs} processes)"
            )


def _exiting(hook):
    """``sys.excepthook`` that reports as ``hook`` does, then, while the multi-process
    runtime is up, ends the process at once (no shutdown barrier, no atexit handlers).
    Process 0 hosts the coordination service, whose end aborts every other process: it
    lingers ``_LINGER_S`` first, so that processes failing at the same time (a count
    that disagrees) print their own errors."""

    def report_and_exit(kind, value, traceback):
        try:
            hook(kind, value, traceback)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            if jax.distributed.is_initialized():
                if _runtime().process_id == 0:
                    time.sleep(_LINGER_S)
                os._exit(1)

    return report_and_exit


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
