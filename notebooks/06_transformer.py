# %% [markdown]
# # A transformer block that reverses strings
#
# A character-level task an LSTM finds hard and attention finds easy: given a string of six
# letters from `abcdefgh`, output it reversed. The first output letter is the last input
# letter, so each position must look at one far-away position, and which one depends only on
# where it is. `MultiHeadAttention` lets every position look at every other in one step,
# and learned position embeddings tell it where to look.

# %%
import operator
import time

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import fluxjax as fj
from fluxjax import (
    Chain,
    DataLoader,
    Dense,
    Embedding,
    LayerNorm,
    MultiHeadAttention,
    Parallel,
    SkipConnection,
    logitcrossentropy,
    relu,
    train_,
)

ALPHABET, LENGTH = "abcdefgh", 6
VOCAB = len(ALPHABET)


def strings(n, seed):
    """n random strings as indices (n, LENGTH) counting from 0, and their reversals."""
    x = np.random.default_rng(seed).integers(0, VOCAB, size=(n, LENGTH))
    return x, x[:, ::-1].copy()


def text(indices):
    return "".join(ALPHABET[i] for i in indices)


x_train, y_train = strings(4096, seed=0)
x_test, y_test = strings(512, seed=1)
[(text(a), text(b)) for a, b in zip(x_train[:3], y_train[:3])]

# %% [markdown]
# The model is one encoder block as in Vaswani et al. (2017), written with Flux's layers:
#
# - `Parallel(+, …)` adds a token embedding and a position embedding: `Embedding(vocab, dim)`
#   turns integer indices `(n, seq)` into vectors `(n, seq, dim)`;
# - self-attention `MultiHeadAttention(dim, nheads)` returns `(y, scores)`; `output` keeps
#   `y`, and a `SkipConnection` adds it to its input (a residual connection);
# - `LayerNorm`, a two-layer MLP with its own residual connection, `LayerNorm` again;
# - a `Dense` layer gives each position's scores over the alphabet.

# %%
fj.seed(0)
DIM = 32


def positions(x):
    """0, 1, …, seq - 1: the index of each position, for the position embedding."""
    return jnp.arange(x.shape[-1])


def output(pair):
    """The attention output of ``(y, scores)``."""
    return pair[0]


model = Chain(
    Parallel(operator.add, Embedding(VOCAB, DIM), Chain(positions, Embedding(LENGTH, DIM))),
    SkipConnection(Chain(MultiHeadAttention(DIM, 4), output), operator.add),
    LayerNorm(DIM),
    SkipConnection(Chain(Dense(DIM, 64, relu), Dense(64, DIM)), operator.add),
    LayerNorm(DIM),
    Dense(DIM, VOCAB),
)
print(fj.summary(model))

# %% [markdown]
# Targets are one-hot along the last axis, so `logitcrossentropy` averages the loss over
# every position of every string. `train_` compiles one step and runs each epoch of the
# `DataLoader` under `lax.scan`.

# %%
targets = np.eye(VOCAB, dtype=np.float32)[y_train]  # (n, LENGTH, VOCAB)
loader = DataLoader((x_train, targets), batchsize=64, shuffle=True, key=0)


def loss(x, y):
    return logitcrossentropy(model(x), y)


def accuracy(x, y):
    """(letters right, whole strings right) on indices x with reversals y."""
    guess = np.asarray(fj.onecold(model(x)))
    return float(np.mean(guess == y)), float(np.mean((guess == y).all(axis=-1)))


print(f"before training: {accuracy(x_test, y_test)}")  # chance is 1/8 per letter
start = time.perf_counter()
losses = train_(loss, model, loader, fj.ADAM(3e-3), epochs=4, progress=False)
print(f"{time.perf_counter() - start:.1f} s for {len(losses)} steps")
letters, whole = accuracy(x_test, y_test)
assert whole >= 0.95, whole
print(f"test accuracy: {letters:.3f} of letters, {whole:.3f} of strings")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(np.asarray(losses))
ax.set(xlabel="step", ylabel="training loss", yscale="log")
fig.tight_layout()

# %% [markdown]
# Some test strings and the model's answers:

# %%
guess = np.asarray(fj.onecold(model(x_test[:5])))
[(text(a), text(b)) for a, b in zip(x_test[:5], guess)]

# %% [markdown]
# Where does each position look? The attention layer's second output holds the scores,
# `(n, nheads, q_len, kv_len)`: for output position `i`, how much it reads from input
# position `j`. Averaged over the heads, the trained block reads mostly from position
# `LENGTH - 1 - i`: the anti-diagonal.

# %%
embedded = model[0](x_test[:1])
_, scores = model[1].layers[0](embedded)
mean = np.asarray(scores)[0].mean(axis=0)  # (q_len, kv_len), averaged over heads
assert (mean.argmax(axis=1) == np.arange(LENGTH)[::-1]).all()

fig, ax = plt.subplots(figsize=(3.5, 3))
ax.imshow(mean, cmap="viridis")
ax.set(xlabel="input position j", ylabel="output position i", title=text(x_test[0]))
fig.tight_layout()

# %% [markdown]
# A mask says which keys each query may attend to (True = attend). A causal mask, as a
# decoder uses, lets position `i` see only positions `j ≤ i`, so the first output position
# can no longer read the last input letter; its scores there are exactly zero.

# %%
causal = jnp.tril(jnp.ones((LENGTH, LENGTH), bool))
_, masked = model[1].layers[0](embedded, mask=causal)
np.asarray(masked)[0, 0].round(2)
