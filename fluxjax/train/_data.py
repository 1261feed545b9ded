"""One-hot encoding and mini-batches: ``onehot``, ``onehotbatch``, ``onecold``, ``DataLoader``."""

import copy
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxjax.layers import host_rng
from fluxjax.tracker import data

from ._sharding import every_device_split, from_process_parts

__all__ = ["onehot", "onehotbatch", "onecold", "DataLoader", "Position"]


class Position(NamedTuple):
    """Where a ``DataLoader`` stands: the epoch (0-based) and the next batch in it."""

    epoch: int
    batch: int


def _label_list(labels):
    """Labels as a list of plain Python values (so NumPy and JAX scalars compare and hash)."""
    if isinstance(labels, np.ndarray | jax.Array):
        return np.asarray(labels).tolist()
    return [x.item() if isinstance(x, np.generic) else x for x in labels]


def _indexer(labels, unk):
    """A function mapping a label to its position in ``labels``."""
    labels = _label_list(labels)
    table = {}
    for i, label in enumerate(labels):
        table.setdefault(label, i)
    if unk is not None and unk not in table:
        raise ValueError(f"unk={unk!r} is not one of the labels {labels}")

    def index(l):
        l = l.item() if isinstance(l, np.generic) else l
        if l in table:
            return table[l]
        if unk is None:
            raise ValueError(
                f"label {l!r} is not one of the labels {labels}; pass unk= to map unknown labels"
            )
        return table[unk]

    return index, len(labels)


def onehot(l, labels, unk=None):
    """onehot(l, labels, unk=None) → float32 vector, 1 at the position of ``l`` in ``labels``.

    An ``l`` not in ``labels`` maps to ``unk`` if given, else raises ``ValueError``.

    >>> onehot("b", "abc")
    Array([0., 1., 0.], dtype=float32)
    """
    index, k = _indexer(labels, unk)
    return jax.nn.one_hot(index(l), k)


def onehotbatch(ls, labels, unk=None):
    """onehotbatch(ls, labels, unk=None) → ``(len(ls), len(labels))``, one row per label.

    >>> onehotbatch([1, 0, 1], range(2))
    Array([[0., 1.],
           [1., 0.],
           [0., 1.]], dtype=float32)
    """
    index, k = _indexer(labels, unk)
    return jax.nn.one_hot(np.array([index(l) for l in _label_list(ls)], dtype=np.int32), k)


def onecold(y, labels=None):
    """onecold(y, labels=None) → argmax over the last axis: an index or, with ``labels``, a label.

    For a batch ``(N, k)`` the result has shape ``(N,)`` (a NumPy array of labels when
    ``labels`` is given); for one vector it is a single index or label.

    >>> import jax.numpy as jnp
    >>> onecold(jnp.array([0.1, 0.7, 0.2]), "abc")
    'b'
    >>> onecold(jnp.array([[0.1, 0.9], [0.8, 0.2]]))
    Array([1, 0], dtype=int32)
    """
    i = jnp.argmax(data(y), axis=-1)
    if labels is None:
        return i
    labels = _label_list(labels)
    if i.ndim == 0:
        return labels[int(i)]
    return np.asarray(labels)[np.asarray(i)]


def _batchsize(n, nobs, partial) -> int:
    """``n`` checked: a whole number of at least 1 that yields at least one batch."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(
            f"DataLoader: batchsize must be a whole number (an int), got {type(n).__name__} "
            f"{n!r}; e.g. DataLoader(data, 32)"
        )
    if n < 1:
        raise ValueError(f"DataLoader: batchsize must be at least 1, got {n}")
    if n > nobs and not partial:
        raise ValueError(
            f"DataLoader: batchsize={n} is larger than the data ({nobs} observations), so "
            f"partial=False would give no batch at all; use a batchsize of at most {nobs} "
            f"or partial=True (one batch of {nobs})"
        )
    return int(n)


class DataLoader:
    """DataLoader(data, batchsize=1, *, shuffle=False, partial=True, key=None, shard=False)

    Mini-batches along the first axis of an array, or of every array in a tuple (then each
    batch is a tuple, which ``train_`` splats into the loss) or a dict (then each batch is
    a dict with the same keys, which ``train_`` passes as one argument, as Flux passes a
    NamedTuple batch). Iterating again starts a new
    epoch, reshuffled when ``shuffle=True``; ``key`` (a ``jax.random`` key or an int) fixes
    the order; without it the key comes from the global stream that ``seed(n)`` resets.
    ``partial=False`` drops a last batch smaller than ``batchsize``. ``batchsize`` must be
    an int of at least 1, and no larger than the data with ``partial=False``.

    ``shard=True`` is for multi-process runs (``train_(..., devices="all")`` after
    ``fluxjax.distributed.initialize``): ``batchsize`` is the global batch, every batch
    is one global array split over all devices, and each process reads only its own rows
    of it. Every process must build the loader from the same data with the same ``key``
    (required with ``shuffle=True``), so all agree on every batch.

    >>> import numpy as np
    >>> X, Y = np.arange(10).reshape(5, 2), np.arange(5)
    >>> [y.tolist() for x, y in DataLoader((X, Y), batchsize=2)]
    [[0, 1], [2, 3], [4]]
    >>> len(DataLoader((X, Y), batchsize=2, partial=False))
    2
    """

    def __init__(self, data, batchsize=1, *, shuffle=False, partial=True, key=None, shard=False):
        self.keys = tuple(data) if isinstance(data, dict) else None  # dict batches, by key
        data = tuple(data.values()) if self.keys is not None else data
        self.single = not isinstance(data, tuple | list)
        self.tensors = (data,) if self.single else tuple(data)
        if not self.tensors:
            raise ValueError("DataLoader needs at least one array")
        sizes = [np.shape(t)[0] if np.ndim(t) > 0 else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            shapes = ", ".join(str(np.shape(t)) for t in self.tensors)
            raise ValueError(
                f"every array in a DataLoader needs the same first dimension (the number of "
                f"observations); got shapes {shapes}"
            )
        self.nobs, self.batchsize = sizes[0], _batchsize(batchsize, sizes[0], partial)
        self.shuffle, self.partial = shuffle, partial
        self.split = every_device_split() if shard else None
        if shard:
            self._check_shard(key)
        # shuffle on the host: drawing a permutation on the device would wait for the
        # training steps queued before it
        self._rng = host_rng(key)
        self._first = copy.deepcopy(self._rng)  # the key before any epoch: for position =
        self._epoch_state = self._rng.bit_generator.state  # the key at this epoch's start
        self._epoch, self._batch, self._started, self._pending = 0, 0, False, False

    def __len__(self):
        if self.partial:
            return math.ceil(self.nobs / self.batchsize)
        return self.nobs // self.batchsize

    def batch_sizes(self) -> list:
        """The sizes of an epoch's batches: ``batchsize`` and a last smaller one, if any."""
        full, rest = divmod(self.nobs, self.batchsize)
        return [self.batchsize] * (full > 0) + [rest] * (rest > 0 and self.partial)

    def _check_shard(self, key):
        if self.shuffle and key is None:
            raise ValueError(
                "DataLoader(..., shuffle=True, shard=True) needs key=: every process must "
                "draw the same order, so pass the same key (an int) on every process"
            )
        n = self.split.mesh.size
        for size in self.batch_sizes():
            if size % n:
                raise ValueError(
                    f"shard=True: a batch of {size} does not split evenly over {n} devices; "
                    f"use a batchsize divisible by {n} (partial=False drops a smaller last batch)"
                )

    @property
    def position(self) -> Position:
        """``(epoch, batch)``: the epoch (0-based) and the batch it hands out next.

        Counts the batches handed out; after a whole epoch it reads ``(epoch + 1, 0)``.
        Setting it (``loader.position = (2, 5)``) makes the next iteration start at batch 5
        of epoch 2, in that epoch's order (replayed from the loader's key), so a
        hand-written loop can resume. An iteration left early (``break``) is not resumed:
        the next one starts a new epoch, as before.

        >>> loader = DataLoader(np.arange(6), 2, shuffle=True, key=0)
        >>> first = [b.tolist() for b in loader]
        >>> loader.position
        Position(epoch=1, batch=0)
        >>> loader.position = (0, 1)
        >>> [b.tolist() for b in loader] == first[1:]
        True
        """
        if self._batch >= len(self):
            return Position(self._epoch + 1, 0)
        return Position(self._epoch, self._batch)

    @position.setter
    def position(self, where):
        epoch, batch = where
        if not (isinstance(epoch, numbers.Integral) and isinstance(batch, numbers.Integral)):
            raise TypeError(f"DataLoader.position takes two ints (epoch, batch), got {where!r}")
        if epoch < 0 or not 0 <= batch <= len(self):
            raise ValueError(
                f"DataLoader.position = {tuple(where)}: the epoch must be at least 0 and the "
                f"batch between 0 and {len(self)} (the batches per epoch)"
            )
        rng = copy.deepcopy(self._first)
        for _ in range(int(epoch) if self.shuffle else 0):
            rng.permutation(self.nobs)  # replay the earlier epochs' draws
        self._resume_at(int(epoch), int(batch), rng.bit_generator.state)

    def _resume_at(self, epoch, batch, key_state):
        """Start the next epoch at batch ``batch`` of epoch ``epoch``, whose shuffling key
        was ``key_state`` (a NumPy bit generator state) at its start."""
        if batch >= len(self):
            epoch, batch = epoch + 1, 0
            if self.shuffle:
                rng = copy.deepcopy(self._rng)
                rng.bit_generator.state = key_state
                rng.permutation(self.nobs)
                key_state = rng.bit_generator.state
        self._rng.bit_generator.state = key_state
        self._epoch, self._batch, self._pending = epoch, batch, True

    def _mark(self, batch):
        """Note that the batches of this epoch up to ``batch`` are handed out."""
        self._batch = batch

    def order(self) -> np.ndarray:
        """The observation order for the next epoch (advances the shuffling key).

        After ``position`` was set, the order of that epoch; ``position.batch`` says where
        in it to start."""
        if self._pending:
            self._pending = False
        elif self._started:
            self._epoch, self._batch = self._epoch + 1, 0
        self._started = True
        self._epoch_state = self._rng.bit_generator.state
        if not self.shuffle:
            return np.arange(self.nobs)
        return self._rng.permutation(self.nobs)

    def batch(self, ids):
        """The batch made of observations ``ids``: an array, or a tuple of arrays."""
        if self.split is not None:
            parts = from_process_parts(self.split, self.tensors, np.arange(self.nobs)[ids])
        else:
            parts = tuple(t[ids] for t in self.tensors)
        if self.keys is not None:
            return dict(zip(self.keys, parts, strict=True))
        return parts[0] if self.single else parts

    def __iter__(self):
        order, b = self.order(), self.batchsize
        for k in range(self._batch, len(self)):
            self._mark(k + 1)
            ids = order[k * b : (k + 1) * b] if self.shuffle else slice(k * b, (k + 1) * b)
            yield self.batch(ids)

    def __repr__(self):
        return (
            f"DataLoader(nobs={self.nobs}, batchsize={self.batchsize}, "
            f"shuffle={self.shuffle}, partial={self.partial}"
            + (", shard=True)" if self.split is not None else ")")
        )
