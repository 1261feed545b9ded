# %% [markdown]
# # An LSTM that remembers
#
# A task no feed-forward model can solve: each sequence shows one of four symbols at its
# first step, followed by eleven steps of random distractors; at the end the network must
# say which symbol came first. An `LSTM` (Flux v0.9's `Recur` around an `LSTMCell`)
# carries what it has seen in its hidden state from step to step.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import fluxjax as fj
from fluxjax import LSTM, Chain, DataLoader, Dense, logitcrossentropy, reset_, train_

SYMBOLS, STEPS = 4, 12


def sequences(n, seed):
    """(n, STEPS, SYMBOLS) one-hot sequences and the symbol each one started with."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, SYMBOLS, size=(n, STEPS))
    return np.eye(SYMBOLS, dtype=np.float32)[tokens], tokens[:, 0]


x_train, y_train = sequences(2000, seed=0)
x_test, y_test = sequences(500, seed=1)
x_train.shape  # batch first: (samples, time, features)

# %% [markdown]
# A sequence is either a Python list of per-step batches (Flux's style) or one array
# `(samples, time, features)`, as here; the LSTM then returns its output at every step,
# `(samples, time, hidden)`, and we classify from the last one.

# %%
fj.seed(0)


def last(h):
    return h[:, -1]


model = Chain(LSTM(SYMBOLS, 32), last, Dense(32, SYMBOLS))
model

# %% [markdown]
# `reset_` puts the LSTM back to its initial state, a trainable param, so each batch starts
# from it and the gradient reaches it, as in Flux. Calling it inside the loss keeps every
# compiled step independent of the previous batch.

# %%
targets = fj.onehotbatch(y_train, range(SYMBOLS))
loader = DataLoader((x_train, targets), batchsize=50, shuffle=True, key=0)


def loss(x, y):
    reset_(model)
    return logitcrossentropy(model(x), y)


def accuracy(x, y):
    reset_(model)
    return float(np.mean(np.asarray(fj.onecold(model(x))) == y))


print(f"before training: {accuracy(x_test, y_test):.2f}")  # chance is 0.25
start = time.perf_counter()
losses = train_(loss, model, loader, fj.ADAM(0.01), epochs=15, progress=False)
print(f"{time.perf_counter() - start:.1f} s for {len(losses)} steps")
final = accuracy(x_test, y_test)
assert final >= 0.95, final
final

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(np.asarray(losses))
ax.set(xlabel="step", ylabel="training loss", yscale="log")
fig.tight_layout()

# %% [markdown]
# The hidden state is ordinary state of the model: between calls the `Recur` keeps it, so
# feeding a sequence one step at a time gives the same answer as feeding it whole.

# %%
reset_(model)
whole = np.asarray(model(x_test[:5]))
reset_(model)
lstm = model[0]
for t in range(STEPS):
    h = lstm(x_test[:5, t])  # one step of a batch: (samples, features)
stepwise = np.asarray(model[2](h))
np.testing.assert_allclose(whole, stepwise, rtol=1e-5, atol=1e-5)
fj.onecold(stepwise), y_test[:5]

# %% [markdown]
# For comparison, a `Dense` network that sees the whole sequence at once can solve it too,
# but one that sees only the last step cannot: the answer is simply not there.

# %%
fj.seed(0)
memoryless = Chain(last, Dense(SYMBOLS, 32, fj.relu), Dense(32, SYMBOLS))
train_(
    lambda x, y: logitcrossentropy(memoryless(x), y),
    memoryless,
    loader,
    fj.ADAM(0.01),
    epochs=5,
    progress=False,
)
guessed = float(np.mean(np.asarray(fj.onecold(memoryless(x_test))) == y_test))
assert guessed < 0.4, guessed
guessed
