"""Process-wide JAX settings fluxjax chooses, before JAX starts its CPU backend.

**Synchronous CPU dispatch.** XLA's CPU client normally runs each computation on a worker
thread and returns at once. For the small, many-op work of an eager Tracker loop that
hand-off dominates: on a 2-core machine one seed-style SGD step of a 16→32→32→4 MLP took
910 µs with asynchronous dispatch and 406 µs without, and even a pure ``jax.jit`` step got
faster (53 → 46 µs). fluxjax therefore turns asynchronous CPU dispatch off when it is
imported before JAX has started its backends, unless the user chose: the environment
variable ``JAX_CPU_ENABLE_ASYNC_DISPATCH`` (JAX's own) or ``FLUXJAX_CPU_ASYNC=1`` keeps
JAX's default. It only concerns the CPU; GPUs and TPUs are untouched.

**Several CPU devices keep JAX's default.** A program spanning several CPU devices meets
their threads in XLA's in-process all-reduce, which can deadlock when several such
programs are in flight; synchronous dispatch made it happen sooner here (within 3,000
steps of a pure ``jax.jit`` step on 4 forced devices and 2 cores). So the default is not
applied when the process asks for more than one CPU device
(``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``, ``JAX_NUM_CPU_DEVICES`` or
``jax_num_cpu_devices``), ``fluxjax.distributed.initialize`` turns asynchronous dispatch
back on, and ``train_`` runs one program at a time on such a mesh
(``train/_sharding.settle``).
"""

from __future__ import annotations

import os
import re

import jax


def backends_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # pragma: no cover - an older or newer JAX: leave it alone
        return True


def cpu_devices_asked() -> int:
    """The number of CPU devices this process asks JAX for (1 if it does not say)."""
    asked = [1, int(jax.config.values.get("jax_num_cpu_devices", -1))]
    asked += [int(os.environ.get("JAX_NUM_CPU_DEVICES", "1") or 1)]
    found = re.findall(
        r"xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", "")
    )
    return max(asked + [int(n) for n in found])


def configure() -> bool:
    """Apply fluxjax's CPU dispatch default; returns True if it was applied."""
    if "JAX_CPU_ENABLE_ASYNC_DISPATCH" in os.environ or os.environ.get("FLUXJAX_CPU_ASYNC"):
        return False
    if cpu_devices_asked() > 1:
        return False
    if backends_started():
        return False
    try:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    except Exception:  # pragma: no cover - the option was removed
        return False
    return True


SYNC_CPU_DISPATCH = configure()
