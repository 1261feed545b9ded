"""The global random stream used by layer constructors called without ``key=``.

Flux draws initial weights from Julia's global RNG; JAX has no global RNG, so fluxjax
keeps one module-level PRNG key and splits it on every use. ``seed(n)`` resets it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_state = {"key": None}


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
    _state["key"] = jax.random.key(int(n))


def next_key(key=None):
    """next_key(key=None) -> a fresh PRNG key.

    With ``key`` given (a JAX key or an int seed) it is used as is; otherwise the global
    stream is split and advanced.
    """
    if key is not None:
        return jax.random.key(key) if isinstance(key, int) else key
    if _state["key"] is None:
        seed(0)
    _state["key"], key = jax.random.split(_state["key"])
    return key


def glorot_uniform(key, shape, dtype=jnp.float32):
    """glorot_uniform(key, shape, dtype=float32) -> array

    Uniform on ``[-l, l]`` with ``l = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio
    2010); Flux's default initialiser. For a weight of shape ``(out, in)`` the two fans
    are ``out`` and ``in``. Same signature as ``jax.nn.initializers`` functions.

    >>> import jax
    >>> w = glorot_uniform(jax.random.key(0), (5, 10))
    >>> w.shape, bool((abs(w) <= (6 / 15) ** 0.5).all())
    ((5, 10), True)
    """
    limit = jnp.sqrt(6.0 / _fan_sum(shape))
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def glorot_normal(key, shape, dtype=jnp.float32):
    """glorot_normal(key, shape, dtype=float32) -> array

    Normal with standard deviation ``sqrt(2 / (fan_in + fan_out))``.

    >>> import jax
    >>> glorot_normal(jax.random.key(0), (5, 10)).shape
    (5, 10)
    """
    return jax.random.normal(key, shape, dtype) * jnp.sqrt(2.0 / _fan_sum(shape)).astype(dtype)


def _fan_sum(shape) -> int:
    """fan_in + fan_out for a weight of shape ``(out, in, *receptive)`` (Flux's layout)."""
    if len(shape) < 2:
        return shape[0] if shape else 1
    receptive = 1
    for n in shape[2:]:
        receptive *= n
    return (shape[0] + shape[1]) * receptive
