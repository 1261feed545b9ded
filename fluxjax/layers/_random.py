"""Random initial values, drawn on the host: the ``seed`` stream and Flux's initialisers.

Flux draws initial weights from Julia's global RNG. fluxjax keeps one NumPy generator as
its global stream (``seed(n)`` resets it) and draws ``glorot_uniform``/``glorot_normal``
with NumPy, then copies the array to the device: building a layer of a new shape compiles
nothing (JAX's own random functions compile once per shape, about a second each on a
small CPU). A JAX key given as ``key=`` seeds a NumPy generator from its bits, so a key
still fixes the values; any ``jax.nn.initializers``-style ``init`` gets a JAX key.
"""

from __future__ import annotations

import math
import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np


class _Stream:
    """The global stream: one NumPy generator for the process, behind a lock."""

    def __init__(self):
        self.lock, self.seed, self.rng = threading.Lock(), 0, None

    def integers(self, high: int) -> int:
        with self.lock:
            if self.rng is None:
                self.rng = np.random.default_rng(self.seed)
            return int(self.rng.integers(high))


_stream = _Stream()


def seed(n: int) -> None:
    """seed(n) -> None

    Resets the global random stream that constructors use when called without ``key=``,
    so the layers built after it are reproducible.

    >>> import fluxjax.layers as L
    >>> L.seed(1); a = L.Dense(3, 2)
    >>> L.seed(1); b = L.Dense(3, 2)
    >>> bool((a.W.data == b.W.data).all())
    True
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"seed needs an int, got {type(n).__name__} {n!r}")
    with _stream.lock:
        _stream.seed, _stream.rng = int(n), np.random.default_rng(int(n))


def stream_state() -> dict:
    """The global random stream (``seed(n)``'s NumPy generator) as JSON-ready values."""
    with _stream.lock:
        rng = _stream.rng
        return {
            "seed": _stream.seed,
            "rng": None if rng is None else rng.bit_generator.state,
        }


def set_stream_state(saved: dict) -> None:
    """Put the global random stream back as ``stream_state`` gave it."""
    with _stream.lock:
        _stream.seed = saved["seed"]
        if saved["rng"] is None:
            _stream.rng = None
        else:
            _stream.rng = np.random.default_rng()
            _stream.rng.bit_generator.state = saved["rng"]


def host_rng(key=None) -> np.random.Generator:
    """host_rng(key=None) -> a NumPy generator: from the global stream, a JAX key or an int.

    A JAX key and ``jax.random.key(n)`` for an int ``n`` give the same generator.
    """
    if isinstance(key, np.random.Generator):
        return key
    if key is None:
        return np.random.default_rng(_stream.integers(2**63))
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        key = jax.random.key(int(key))
    if not _is_jax_key(key):
        raise TypeError(
            f"key must be a JAX key (jax.random.key(n)), an int seed or None, got "
            f"{type(key).__name__} {key!r}"
        )
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())


def _is_jax_key(key) -> bool:
    """A typed key (``jax.random.key``) or a raw uint32 one (``jax.random.PRNGKey``)."""
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        return False
    return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) or dtype == np.uint32


def next_key(key=None):
    """next_key(key=None) -> a JAX PRNG key: ``key`` itself (an int becomes a key), or one
    drawn from the global stream."""
    if key is not None:
        return jax.random.key(int(key)) if isinstance(key, (int, np.integer)) else key
    return jax.random.key(_stream.integers(2**31))


def draw(init, key, shape, dtype=jnp.float32):
    """draw(init, key, shape, dtype) -> ``init``'s array for ``shape``, on the device.

    fluxjax's own initialisers draw on the host (from the global stream when ``key`` is
    None); any other ``init(key, shape, dtype)`` gets a JAX key from ``next_key``.
    """
    if getattr(init, "on_host", False):
        return init(host_rng(key), shape, dtype)
    return init(next_key(key), shape, dtype)


def zeros(shape, dtype=jnp.float32):
    """Zeros on the device without a compiled program (``jnp.zeros`` compiles per shape)."""
    return jax.device_put(np.zeros(shape, dtype))


def glorot_uniform(key, shape, dtype=jnp.float32):
    """glorot_uniform(key, shape, dtype=float32) -> array

    Uniform on ``[-l, l]`` with ``l = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio
    2010); Flux's default initialiser. For a weight of shape ``(out, in)`` the two fans
    are ``out`` and ``in``. Same signature as ``jax.nn.initializers`` functions; ``key``
    is a JAX key, an int, or a NumPy generator. Drawn on the host.

    >>> import jax
    >>> w = glorot_uniform(jax.random.key(0), (5, 10))
    >>> w.shape, bool((abs(w) <= (6 / 15) ** 0.5).all())
    ((5, 10), True)
    """
    limit = np.sqrt(6.0 / _fan_sum(shape))
    return _on_device(host_rng(key).uniform(-limit, limit, shape), dtype)


def glorot_normal(key, shape, dtype=jnp.float32):
    """glorot_normal(key, shape, dtype=float32) -> array

    Normal with mean 0 and standard deviation ``sqrt(2 / (fan_in + fan_out))``. Drawn on
    the host.

    >>> import jax
    >>> glorot_normal(jax.random.key(0), (5, 10)).shape
    (5, 10)
    """
    std = np.sqrt(2.0 / _fan_sum(shape))
    return _on_device(host_rng(key).standard_normal(shape) * std, dtype)


def kernel_glorot_uniform(key, shape, dtype=jnp.float32):
    """kernel_glorot_uniform(key, shape, dtype=float32) -> array

    ``glorot_uniform`` for a convolution kernel ``(k…, in, out)``: uniform on ``[-l, l]``,
    ``l = sqrt(6 / (fan_in + fan_out))`` with ``fan_in = prod(k)·in`` and ``fan_out =
    prod(k)·out`` (as ``jax.nn.initializers.glorot_uniform()``; the limit is the same for
    ``(k…, out, in)``). The convolution layers' default; drawn on the host.

    >>> import jax
    >>> w = kernel_glorot_uniform(jax.random.key(0), (3, 3, 2, 4))
    >>> w.shape, bool((abs(w) <= (6 / 54) ** 0.5).all())
    ((3, 3, 2, 4), True)
    """
    fans = _fan_sum(shape) if len(shape) < 2 else (shape[-2] + shape[-1]) * math.prod(shape[:-2])
    limit = np.sqrt(6.0 / fans)
    return _on_device(host_rng(key).uniform(-limit, limit, shape), dtype)


glorot_uniform.on_host = glorot_normal.on_host = kernel_glorot_uniform.on_host = True


def _on_device(values, dtype):
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"initial weights need a floating-point dtype, got {np.dtype(dtype)}")
    target = jax.dtypes.canonicalize_dtype(dtype)
    if target != np.dtype(dtype):
        warnings.warn(
            f"initial weights of dtype {np.dtype(dtype)} need JAX's 64-bit mode "
            f'(jax.config.update("jax_enable_x64", True)); they are {target}',
            stacklevel=3,
        )
    return jax.device_put(np.asarray(values, dtype=target))


def _fan_sum(shape) -> int:
    """fan_in + fan_out for a weight of shape ``(out, in, *receptive)`` (Flux's layout)."""
    if len(shape) < 2:
        return shape[0] if shape else 1
    receptive = 1
    for n in shape[2:]:
        receptive *= n
    return (shape[0] + shape[1]) * receptive
