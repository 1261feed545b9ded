"""MultiHeadAttention against NNlib's published values, a NumPy loop over heads, Flux's
test set and a jax.grad twin on every path (tests/_paths.py)."""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _paths import check_paths
from _tol import assert_close

import fluxjax as fj


def np_attention(q, k, v, nheads, mask=None, bias=None):
    """Scores (n, h, q_len, kv_len) and output (n, q_len, dim) by loops over batch and heads;
    head h reads features h·d/h … (h+1)·d/h - 1."""
    n, lq, d = q.shape
    dh = d // nheads
    α = np.zeros((n, nheads, lq, k.shape[1]))
    y = np.zeros((n, lq, v.shape[-1]))
    for b in range(n):
        for h in range(nheads):
            f = slice(h * dh, (h + 1) * dh)
            logits = q[b, :, f] @ k[b, :, f].T / np.sqrt(dh)
            if bias is not None:
                logits = logits + bias
            if mask is not None:
                logits = np.where(mask, logits, -np.inf)
            e = np.exp(logits - logits.max(-1, keepdims=True))
            α[b, h] = e / e.sum(-1, keepdims=True)
            y[b, :, f] = α[b, h] @ v[b, :, f]
    return y, α


def _identity_mha(dim, nheads):
    eye = jnp.eye(dim)
    m = fj.MultiHeadAttention(dim, nheads)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        setattr(m, name, fj.Dense(eye, False))
    return m


def test_nnlib_specific_results():
    """NNlib's test/attention.jl "specific results": q = k = v = reshape(1:12, 4, 3, 1) / 12,
    nheads = 2, with the projections set to the identity; batch first here."""
    q = (np.arange(1, 13, dtype=np.float32) / 12).reshape(1, 3, 4)
    y, α = _identity_mha(4, 2)(q)
    ytrue = [0.429754, 0.513087, 0.613791, 0.697125, 0.46431, 0.547644, 0.647876, 0.73121,
             0.49773, 0.581064, 0.680455, 0.763788]  # fmt: skip
    αtrue = [0.313896, 0.332948, 0.353157, 0.264431, 0.328206, 0.407362, 0.219215, 0.31838,
             0.462405, 0.288691, 0.331243, 0.380066, 0.241239, 0.323893, 0.434868, 0.198438,
             0.311761, 0.489801]  # fmt: skip
    assert_close(y, np.reshape(ytrue, (1, 3, 4)), atol=1e-5)
    assert_close(α, np.reshape(αtrue, (1, 2, 3, 3)), atol=1e-5)


@pytest.mark.parametrize("nheads", [1, 2, 4])
def test_matches_a_numpy_loop_over_heads(rng, nheads):
    m = fj.MultiHeadAttention(8, nheads)
    q = rng.normal(size=(2, 3, 8)).astype(np.float32)
    kv = rng.normal(size=(2, 5, 8)).astype(np.float32)
    Wq, Wk, Wv, Wo = (
        np.asarray(getattr(m, f).W.data) for f in ("q_proj", "k_proj", "v_proj", "out_proj")
    )
    mask = rng.random((3, 5)) > 0.3
    mask[:, 0] = True  # every query sees at least one key
    bias = rng.normal(size=(3, 5)).astype(np.float32)
    y_ref, α_ref = np_attention(q @ Wq.T, kv @ Wk.T, kv @ Wv.T, nheads, mask, bias)
    y, α = m(q, kv, kv, mask=mask, bias=bias)
    assert y.shape == (2, 3, 8) and α.shape == (2, nheads, 3, 5)
    assert_close(y, y_ref @ Wo.T, rtol=1e-5, atol=1e-5)
    assert_close(α, α_ref, rtol=1e-5, atol=1e-6)
    assert np.all((np.asarray(α) > 0) == mask)  # mask True = attend; the rest get exactly 0


def test_flux_attention_test_set(rng):
    """Flux's test/layers/attention.jl, batch first."""
    dim, nheads, n, batch = 4, 2, 3, 5
    mha = fj.MultiHeadAttention(dim, nheads=nheads)
    q, k, v = (rng.random((batch, n, dim)).astype(np.float32) for _ in range(3))
    y, α = mha(q, k, v)
    assert y.shape == (batch, n, dim) and y.dtype == jnp.float32
    assert α.shape == (batch, nheads, n, n) and α.dtype == jnp.float32
    for a, b in zip(mha(q), mha(q, q, q)):  # self-attention
        assert_close(a, b)
    for a, b in zip(mha(q, k), mha(q, k, k)):  # key and value are the same
        assert_close(a, b)
    causal = np.tril(np.ones((n, n), bool))  # NNlib's make_causal_mask, batch first
    _, α = mha(q, mask=causal)
    assert np.all(np.asarray(α)[:, :, 0, 1] == 0)
    assert_close(α[0, 0], np.tril(np.asarray(α[0, 0])))
    assert_close(np.asarray(α).sum(-1), np.ones((batch, nheads, n)))


def test_fields_repr_and_checks():
    m = fj.MultiHeadAttention(16)
    assert m.nheads == 8 and repr(m) == "MultiHeadAttention(16, nheads=8)"
    assert all(getattr(m, f).b is False for f in ("q_proj", "k_proj", "v_proj", "out_proj"))
    assert [tuple(p.shape) for p in fj.params(m)] == [(16, 16)] * 4
    assert m.attn_drop is fj.identity and fj.states(m) == []  # no dropout, no random state
    mb = fj.MultiHeadAttention(6, 3, bias=True, dropout_prob=0.1)
    assert repr(mb) == "MultiHeadAttention(6, nheads=3, bias=True, dropout_prob=0.1)"
    assert len(fj.params(mb)) == 8 and isinstance(mb.attn_drop, fj.Dropout)
    assert "MultiHeadAttention(16, nheads=8)" in fj.summary(fj.Chain(m))
    with pytest.raises(ValueError, match="divisible by nheads=4"):
        fj.MultiHeadAttention(6, 4)
    with pytest.raises(ValueError, match=r"expected q \(n, q_len, 16\)"):
        m(jnp.ones((2, 3, 15)))
    with pytest.raises(ValueError, match="expected q"):
        m(jnp.ones((2, 3, 16)), jnp.ones((2, 4, 16)), jnp.ones((2, 5, 16)))
    a = fj.MultiHeadAttention(4, 2, key=3)
    b = fj.MultiHeadAttention(4, 2, key=3)
    assert all(bool((p.data == q.data).all()) for p, q in zip(fj.params(a), fj.params(b)))


def test_unbatched_sequence(rng):
    m = fj.MultiHeadAttention(4, 2)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    y, α = m(x)
    assert y.shape == (3, 4) and α.shape == (2, 3, 3)
    assert_close(y, m(x[None])[0][0])


def _twin(nheads, mask=None):
    """Attention written out per head with explicit slices and softmax."""

    def twin(arrays, q, kv):
        Wq, Wk, Wv, Wo = arrays
        Q, K, V = q @ Wq.T, kv @ Wk.T, kv @ Wv.T
        dh = Q.shape[-1] // nheads
        ys, αs = [], []
        for h in range(nheads):
            f = slice(h * dh, (h + 1) * dh)
            logits = jnp.einsum("nid,njd->nij", Q[..., f], K[..., f]) / np.sqrt(dh)
            if mask is not None:
                logits = jnp.where(mask, logits, -1e30)
            e = jnp.exp(logits - logits.max(-1, keepdims=True))
            a = e / e.sum(-1, keepdims=True)
            αs.append(a)
            ys.append(jnp.einsum("nij,njd->nid", a, V[..., f]))
        return jnp.concatenate(ys, -1) @ Wo.T, jnp.stack(αs, 1)

    return twin


def test_on_every_path(rng):
    q = rng.normal(size=(2, 3, 6)).astype(np.float32)
    kv = rng.normal(size=(2, 4, 6)).astype(np.float32)
    check_paths(lambda: fj.MultiHeadAttention(6, 3), (q, kv), _twin(3))  # y and α both


def test_mask_on_every_path(rng):
    q = rng.normal(size=(2, 4, 4)).astype(np.float32)
    causal = np.tril(np.ones((4, 4), bool))

    class Causal:  # the mask rides along as a constant of the model's call
        def __init__(self):
            self.mha = fj.MultiHeadAttention(4, 2)

        def __call__(self, x, kv):
            return self.mha(x, kv, mask=causal)

    fj.treelike(Causal)
    check_paths(Causal, (q, q), _twin(2, causal))


def test_dropout_on_scores_and_testmode(rng):
    x = rng.normal(size=(2, 6, 4)).astype(np.float32)
    fj.seed(0)
    plain = fj.MultiHeadAttention(4, 2)
    fj.seed(0)
    m = fj.MultiHeadAttention(4, 2, dropout_prob=0.5)
    _, α = m(x)
    _, α0 = plain(x)
    kept = np.asarray(α) != 0
    assert 0.3 < kept.mean() < 0.7  # NNlib's "dropout" test: about half the scores survive
    assert_close(np.asarray(α)[kept], 2 * np.asarray(α0)[kept], rtol=1e-5)
    key = np.asarray(m.attn_drop.key.data)
    assert not np.array_equal(np.asarray(m(x)[1]), np.asarray(α))  # a fresh mask each call
    assert not np.array_equal(np.asarray(m.attn_drop.key.data), key)
    fj.testmode_(m)
    for a, b in zip(m(x), plain(x)):
        assert_close(a, b)
    fj.trainmode_(m)
    losses = fj.train_(lambda x: fj.numpy.sum(m(x)[0] ** 2), m, [(x,)] * 3, fj.ADAM(0.01))
    assert np.isfinite(np.asarray(losses)).all()


def test_a_transformer_block_trains(rng):
    """A small encoder block (attention, residual, LayerNorm, MLP) learns to copy."""
    fj.seed(0)
    emb, mha = fj.Embedding(5, 8), fj.MultiHeadAttention(8, 2)
    ln, mlp = fj.LayerNorm(8), fj.Chain(fj.Dense(8, 16, fj.relu), fj.Dense(16, 5))
    model = fj.Chain(emb, fj.SkipConnection(lambda h: mha(h)[0], operator.add), ln, mlp)
    tokens = rng.integers(0, 5, size=(16, 6))
    target = jax.nn.one_hot(tokens, 5)

    def loss(x, y):
        return fj.logitcrossentropy(model(x), y)

    first = float(loss(tokens, target))
    fj.train_(loss, fj.params(emb, mha, ln, mlp), [(tokens, target)] * 60, fj.ADAM(0.02))
    assert float(loss(tokens, target)) < 0.2 * first
