"""Where ``train_(..., devices=...)`` keeps its arrays: a 1-D mesh named ``"data"``.

A ``Layout`` is the mesh (or ``None`` for today's single default device) and whether the
params are sharded. Batches are split along their first axis over the mesh; params and
optimiser state are replicated (or, with ``shard_params=True``, each array is split
along its first axis that the device count divides, FSDP style). The compiled step is
unchanged: given sharded batches and replicated params, XLA inserts the all-reduce of
the gradients (and, for sharded params, the all-gathers) itself.
"""

from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


class Layout(NamedTuple):
    """The mesh ``train_`` runs on (``None``: one default device), the param rule, and
    the mesh's two shardings: rows split over the devices, and replicated."""

    mesh: Mesh | None = None
    shard_params: bool = False
    serial: bool = False  # one compiled call at a time (several CPU devices: see ``settle``)
    split: NamedSharding | None = None
    whole: NamedSharding | None = None

    @property
    def size(self) -> int:
        return 1 if self.mesh is None else self.mesh.size


ONE_DEVICE = Layout()


def _device_list(devices):
    every = jax.devices()
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f'devices must be None, "all", an int or a list; got {devices!r}')
        return every
    if isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        if not 1 <= devices <= len(every):
            raise ValueError(f"devices={devices}, but JAX sees {len(every)} devices: {every}")
        return every[: int(devices)]
    chosen = list(devices)
    if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
        raise ValueError(f"devices must be a non-empty list of jax devices, got {devices!r}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"devices lists a device twice: {chosen}")
    return chosen


def layout(devices=None, shard_params=False) -> Layout:
    """layout(devices=None, shard_params=False) → the ``Layout`` for ``train_``.

    ``devices``: ``None`` (one default device), ``"all"`` (every device of every
    process), an int n (the first n of ``jax.devices()``) or a list of devices.

    >>> layout(None).size, layout(1).mesh.axis_names
    (1, ('data',))
    """
    if devices is None:
        if shard_params:
            raise ValueError('shard_params=True needs devices= (e.g. devices="all")')
        return ONE_DEVICE
    chosen = _device_list(devices)
    here = jax.process_index()
    local_cpus = [d for d in chosen if d.platform == "cpu" and d.process_index == here]
    mesh = Mesh(np.array(chosen), (AXIS,))
    split, whole = NamedSharding(mesh, P(AXIS)), NamedSharding(mesh, P())
    return Layout(mesh, bool(shard_params), len(local_cpus) > 1, split, whole)


def settle(lay: Layout, out):
    """On several CPU devices of one process, wait for ``out`` before going on.

    XLA's CPU all-reduce meets its device threads in one thread pool; with several
    multi-device programs in flight it can deadlock (seen here: 4 forced CPU devices on 2
    cores, a pure ``jax.jit`` step, aborted after 40 s). One program at a time never did.
    """
    if lay.serial:
        jax.block_until_ready(out)
    return out


def check_batches(lay: Layout, data) -> None:
    """Raise ``ValueError`` naming both numbers if a batch of ``data`` does not divide.

    Checked before training starts: the sizes of a ``DataLoader`` (batchsize and last
    partial batch) or of every item of a list or tuple; a one-shot iterator is checked
    step by step.
    """
    split = getattr(data, "split", None)
    if split is not None and split.mesh.size != lay.size:
        raise ValueError(
            f"a DataLoader(..., shard=True) splits batches over all {split.mesh.size} "
            f'devices, but train_ runs on {lay.size}; pass devices="all"'
        )
    if lay.mesh is None:
        return
    sizes = getattr(data, "batch_sizes", None)
    if sizes is not None:
        for size in sizes():
            _divides(lay, size)
    elif isinstance(data, list | tuple):
        for item in data:
            _check_item(lay, item)


def _divides(lay, size):
    if size % lay.size:
        raise ValueError(
            f"a batch of {size} does not split evenly over {lay.size} devices; use a batch "
            f"size divisible by {lay.size} (DataLoader(..., partial=False) drops a last "
            f"smaller batch) or other devices="
        )


def _check_item(lay, item):
    for leaf in jax.tree.leaves(item):
        if np.ndim(leaf) > 0:
            _divides(lay, np.shape(leaf)[0])


def _spec(lay: Layout, shape, sharded: bool) -> P:
    """Split along the first axis the device count divides (FSDP), else replicate."""
    if sharded:
        for axis, n in enumerate(shape):
            if n % lay.size == 0 and n >= lay.size:
                return P(*([None] * axis), AXIS)
    return P()


def _to(a, where: NamedSharding):
    """``a`` placed as ``where`` says. An array of this process only (NumPy, or one
    committed to a device by an earlier ``train_``) goes to a mesh spanning several
    processes piece by piece, each of this process's devices getting its slice (JAX's
    ``device_put`` would take it for a cross-host transfer and refuse). Every process
    passes the same values, as for any replicated input."""
    if where.is_fully_addressable or (isinstance(a, jax.Array) and not a.is_fully_addressable):
        return jax.device_put(a, where)
    shape = np.shape(a)
    mine = where.addressable_devices_indices_map(shape).items()
    pieces = [jax.device_put(a[index], device) for device, index in mine]
    return jax.make_array_from_single_device_arrays(shape, where, pieces)


def _put(lay, tree, sharded):
    if lay.mesh is None:
        return tree
    return jax.tree.map(
        lambda a: _to(a, NamedSharding(lay.mesh, _spec(lay, np.shape(a), sharded))), tree
    )


def place_params(lay: Layout, tree):
    """Params and optimiser state: replicated, or FSDP-split when ``lay.shard_params``.

    The rule depends on an array's shape only, so a param and its optimiser moments
    (same shape) are split the same way; scalars (step counts) are replicated.
    """
    return _put(lay, tree, lay.shard_params)


def place_data(lay: Layout, tree):
    """Whole-epoch tensors for the ``lax.scan`` path: replicated on every device."""
    return _put(lay, tree, False)


def place_batch(lay: Layout, item):
    """One batch: every array split along its first axis over the mesh (one transfer)."""
    if lay.mesh is None:
        return item
    leaves, tree = jax.tree.flatten(item)
    _check_item(lay, leaves)
    leaves = [_from_host_on_cpu(a) for a in leaves]
    where = [lay.split if np.ndim(a) else lay.whole for a in leaves]
    if lay.split.is_fully_addressable:
        placed = jax.device_put(leaves, where)  # one transfer
    else:
        placed = [_to(a, w) for a, w in zip(leaves, where)]
    return jax.tree.unflatten(tree, placed)


def _from_host_on_cpu(a):
    """A one-CPU-device array as NumPy: XLA's CPU client splits host memory over devices
    about 2.5x faster than it reshards a device array (measured: 128 vs 307 µs)."""
    if isinstance(a, jax.Array) and len(a.devices()) == 1:
        if next(iter(a.devices())).platform == "cpu":
            return np.asarray(a)
    return a


def constrain_batch(lay: Layout, item):
    """Inside a compiled function: ask XLA to split ``item`` along its first axis."""
    if lay.mesh is None:
        return item
    return jax.tree.map(
        lambda a: jax.lax.with_sharding_constraint(a, lay.split) if a.ndim else a, item
    )


def gather(lay: Layout, tree):
    """Arrays placed by ``lay`` as ordinary arrays on this process's first device."""
    if lay.mesh is None:
        return tree
    home = jax.local_devices()[0]

    def local(a):
        if not a.is_fully_replicated:
            a = settle(lay, jax.device_put(a, lay.whole))  # all-gather the FSDP slices
        return jax.device_put(a.addressable_shards[0].data, home)

    return jax.tree.map(local, tree)


def device_bytes(tree) -> dict:
    """device_bytes(tree) → ``{device: bytes}`` held by the arrays of ``tree`` on each
    device of this process (from ``a.addressable_shards``).

    >>> import jax.numpy as jnp
    >>> sum(device_bytes([jnp.zeros(4), jnp.zeros((2, 2))]).values())
    32
    """
    held: dict = {}
    for a in jax.tree.leaves(tree):
        for shard in a.addressable_shards:
            held[shard.device] = held.get(shard.device, 0) + shard.data.nbytes
    return held


def every_device_split() -> NamedSharding:
    """Batches split over every device of every process (``devices="all"``)."""
    return NamedSharding(Mesh(np.array(jax.devices()), (AXIS,)), P(AXIS))


def from_process_parts(split: NamedSharding, tensors, ids):
    """Global batches of rows ``ids`` of ``tensors``, each process reading only its rows.

    Every process passes the same ``ids``; this process's devices hold a contiguous range
    of them, which is all it indexes (``jax.make_array_from_process_local_data``).
    """
    ids = np.asarray(ids)
    rows = [s[0] for s in split.addressable_devices_indices_map((len(ids),)).values()]
    lo, hi = min(r.start or 0 for r in rows), max(r.stop or len(ids) for r in rows)
    mine = ids[lo:hi]
    return tuple(
        jax.make_array_from_process_local_data(split, np.asarray(t[mine]), (len(ids), *t.shape[1:]))
        for t in tensors
    )
