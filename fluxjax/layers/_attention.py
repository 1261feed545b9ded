"""``MultiHeadAttention``: Flux 0.14's layer (Vaswani et al. 2017), batch first.

Flux's ``(features, seq, batch)`` is ``(batch, seq, features)`` here, and its scores
``(kv_len, q_len, nheads, batch)`` are ``(batch, nheads, q_len, kv_len)``. Heads are
contiguous slices of the features (NNlib's ``split_heads``). The scores and the weighted
sum are one lifted function each, with the dropout layer between them, as NNlib's
``dot_product_attention`` applies ``fdrop`` to the scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from ..tracker import track
from ._activations import identity
from ._basic import Dense
from ._checks import sizes
from ._dropout import Dropout
from ._random import glorot_uniform, host_rng
from ._treelike import register


def _heads(x, nheads):
    return x.reshape(*x.shape[:-1], nheads, x.shape[-1] // nheads)  # (…, seq, h, d/h)


@track
def _scores(q, k, nheads, mask=None, bias=None):
    """softmax over keys of ``q·k / √(d/h)`` per head: ``(…, h, q_len, kv_len)``; where
    ``mask`` is False the score is -∞ (NNlib), so those keys get weight 0."""
    q, k = _heads(q, nheads), _heads(k, nheads)
    logits = jnp.einsum("...ihd,...jhd->...hij", q, k) / jnp.sqrt(jnp.asarray(q.shape[-1], q.dtype))
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
    return jax.nn.softmax(logits, axis=-1)


@track
def _attend(α, v, nheads):
    """``Σⱼ α[…, h, i, j]·v[…, j, h, :]``, heads joined again: ``(…, q_len, v_dim)``."""
    y = jnp.einsum("...hij,...jhd->...ihd", α, _heads(v, nheads))
    return y.reshape(*y.shape[:-2], -1)


@dataclass(eq=False, repr=False, init=False)
class MultiHeadAttention:
    """MultiHeadAttention(dim, nheads=8; bias=False, init=glorot_uniform, dropout_prob=0.0,
    key=None)

    Multi-head dot-product attention: ``q``, ``k``, ``v`` go through the ``Dense``
    projections ``q_proj``, ``k_proj``, ``v_proj`` (no bias by default, as Flux 0.14), are
    split into ``nheads`` contiguous feature slices, and each head computes
    ``α = softmax(q·kᵀ / √(dim/nheads))`` over the keys and ``α·v``; the heads are joined
    and go through ``out_proj``. Called ``mha(q)`` (self-attention), ``mha(q, kv)`` or
    ``mha(q, k, v; mask=None, bias=None)`` on ``(n, seq, dim)`` (or one ``(seq, dim)``
    sequence); returns ``(y, α)``, ``y`` ``(n, q_len, dim)`` and the scores ``α``
    ``(n, nheads, q_len, kv_len)``. ``mask`` (True = attend) and ``bias`` (added to the
    logits) broadcast to the scores' shape; a query with every key masked gets NaN
    scores, as in NNlib. ``dropout_prob > 0`` drops scores while active (field
    ``attn_drop``, a ``Dropout``, which ``testmode_`` turns off; ``identity`` for
    ``dropout_prob=0``, so the layer then holds no random state).

    >>> import jax.numpy as jnp
    >>> mha = MultiHeadAttention(16, 4)
    >>> mha
    MultiHeadAttention(16, nheads=4)
    >>> y, α = mha(jnp.ones((2, 10, 16)))
    >>> y.shape, α.shape
    ((2, 10, 16), (2, 4, 10, 10))
    >>> causal = jnp.tril(jnp.ones((10, 10), bool))  # query i sees keys j ≤ i
    >>> float(mha(jnp.ones((2, 10, 16)), mask=causal)[1][0, 0, 0, 1])
    0.0
    """

    nheads: int
    q_proj: Any
    k_proj: Any
    v_proj: Any
    attn_drop: Any
    out_proj: Any

    def __init__(self, dim, nheads=8, *, bias=False, init=glorot_uniform, dropout_prob=0.0,
                 key=None):  # fmt: skip
        dim, nheads = sizes("MultiHeadAttention", dim=dim, nheads=nheads)
        if dim % nheads:
            raise ValueError(f"MultiHeadAttention: dim={dim} must be divisible by nheads={nheads}")
        # key= fixes all five parts; without it each draws from the global stream
        seeds = [None] * 5 if key is None else host_rng(key).integers(2**31, size=5).tolist()
        dense = [Dense(dim, dim, bias=bias, init=init, key=s) for s in seeds[:4]]
        self.nheads = nheads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = dense
        # no dropout, no random stream: the model then holds only float arrays (jax.grad)
        self.attn_drop = Dropout(dropout_prob, key=seeds[4]) if dropout_prob else identity

    def __call__(self, q, k=None, v=None, *, mask=None, bias=None):
        k = q if k is None else k
        v = k if v is None else v
        dim = self.q_proj.W.shape[1]
        shapes = [tuple(getattr(a, "shape", ())) for a in (q, k, v)]
        ok = all(len(s) >= 2 and s[-1] == dim for s in shapes)
        if not ok or shapes[1][:-1] != shapes[2][:-1] or shapes[0][:-2] != shapes[1][:-2]:
            raise ValueError(
                f"{self!r}: expected q (n, q_len, {dim}) and k, v (n, kv_len, {dim}), "
                f"got shapes {shapes[0]}, {shapes[1]}, {shapes[2]}"
            )
        α = _scores(self.q_proj(q), self.k_proj(k), self.nheads, mask, bias)
        α = α if self.attn_drop is identity else self.attn_drop(α)
        return self.out_proj(_attend(α, self.v_proj(v), self.nheads)), α

    def __repr__(self):
        s = f"MultiHeadAttention({self.q_proj.W.shape[1]}, nheads={self.nheads}"
        s += "" if self.q_proj.b is False else ", bias=True"
        p = getattr(self.attn_drop, "p", 0)
        return s + ("" if p == 0 else f", dropout_prob={p}") + ")"


register(MultiHeadAttention)
