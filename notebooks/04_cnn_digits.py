# %% [markdown]
# # A convolutional network on handwritten digits
#
# The 8×8 digits of scikit-learn again (no download), now with Flux v0.9's convolution
# layers: `Conv`, `MaxPool`, `BatchNorm` and `Dropout`. Images are **batch first,
# channels last**: Flux's WHCN `(8, 8, 1, N)` is `(N, 8, 8, 1)` here; a kernel keeps
# Flux's layout `(k1, k2, in, out)`.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import fluxjax as fj
from fluxjax import (
    ADAM,
    BatchNorm,
    Chain,
    Conv,
    DataLoader,
    Dense,
    Dropout,
    MaxPool,
    logitcrossentropy,
    relu,
    train_,
)

images, labels = load_digits(return_X_y=True)
x_all = (images / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)  # (N, w, h, channels)

order = np.random.default_rng(0).permutation(len(x_all))  # the same split as notebook 03
train, test = order[:1500], order[1500:]
x_train, y_train = x_all[train], labels[train]
x_test, y_test = x_all[test], labels[test]
x_train.shape, x_test.shape

# %% [markdown]
# Two convolution blocks (3×3 kernels, padded to keep the size, then 2×2 max pooling)
# shrink 8×8 to 2×2 with 32 channels; a dense layer reads the 128 numbers. `BatchNorm`
# normalises each channel over the batch and keeps running statistics for later;
# `Dropout` zeroes half of the features while training.

# %%
fj.seed(0)


def flatten(x):
    return x.reshape(x.shape[0], -1)


model = Chain(
    Conv((3, 3), 1, 16, pad=1),
    BatchNorm(16, relu),
    MaxPool((2, 2)),
    Conv((3, 3), 16, 32, relu, pad=1),
    MaxPool((2, 2)),
    flatten,
    Dropout(0.5),
    Dense(128, 10),
)
model

# %% [markdown]
# `params` holds what is trained; `states` what the layers update themselves: the
# running mean and variance of `BatchNorm` and the random stream of `Dropout`.

# %%
[p.shape for p in fj.params(model)], [s.shape for s in fj.states(model)]

# %% [markdown]
# Training is the same `train_` as for a `Dense` chain: ten epochs of shuffled
# mini-batches, each epoch one compiled `scan`. The compiled step threads the states
# through: every step draws a fresh dropout mask and moves the running statistics, exactly
# as an eager Flux loop would.

# %%
targets = fj.onehotbatch(y_train, range(10))
loader = DataLoader((x_train, targets), batchsize=32, shuffle=True, key=0)


def loss(x, y):
    return logitcrossentropy(model(x), y)


opt = ADAM(0.003)
start = time.perf_counter()
losses = train_(loss, model, loader, opt, epochs=10, progress=False)
print(f"{time.perf_counter() - start:.1f} s for {len(losses)} steps")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(np.asarray(losses))
ax.set(xlabel="step", ylabel="training loss", yscale="log")
fig.tight_layout()

# %% [markdown]
# To evaluate, `testmode_` switches dropout off and makes `BatchNorm` use its running
# statistics; the model is then deterministic. (Switching modes drops compiled steps,
# since the mode is part of what a step traces: switch once, not at every batch.)

# %%
fj.testmode_(model)
np.testing.assert_allclose(
    np.asarray(model(x_test)), np.asarray(model(x_test)), rtol=1e-5, atol=1e-5
)
accuracy = float(np.mean(np.asarray(fj.onecold(model(x_test))) == y_test))
assert accuracy >= 0.98, accuracy
accuracy

# %% [markdown]
# Some test digits with the network's answers:

# %%
guess = np.asarray(fj.onecold(model(x_test[:12])))
fig, axes = plt.subplots(1, 12, figsize=(12, 1.4))
for ax, img, g, t in zip(axes, x_test[:12], guess, y_test[:12]):
    ax.imshow(img[..., 0].T, cmap="gray_r")  # (w, h): transpose to show rows
    ax.set_title(f"{g}", color="black" if g == t else "red")
    ax.axis("off")
