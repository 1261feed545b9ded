# %% [markdown]
# # Training a `Chain` on handwritten digits
#
# scikit-learn ships 1797 small (8×8) images of handwritten digits, so this runs without
# a download. We train a three-layer perceptron with `train_` and `ADAM`, watch the loss
# and the test accuracy, look at some predictions, and save and reload the model.
# `python -m fluxjax.demo` (`make demo`) does the same from the command line.

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import fluxjax as fj
from fluxjax import ADAM, Chain, DataLoader, Dense, logitcrossentropy, relu, train_

images, labels = load_digits(return_X_y=True)
x_all = (images / 16.0).astype(np.float32)  # pixels are 0..16: scale to [0, 1]

order = np.random.default_rng(0).permutation(len(x_all))  # a fixed split
train, test = order[:1500], order[1500:]
x_train, y_train = x_all[train], labels[train]
x_test, y_test = x_all[test], labels[test]
x_train.shape, x_test.shape  # batch first: one digit per row

# %% [markdown]
# The model maps 64 pixels to 10 raw scores (logits), one per digit.
# `logitcrossentropy` applies the softmax itself, in a numerically stable way.

# %%
fj.seed(0)  # reproducible initial weights


def build():
    return Chain(Dense(64, 128, relu), Dense(128, 128, relu), Dense(128, 10))


model = build()
model

# %% [markdown]
# `DataLoader` serves shuffled mini-batches of `(images, one-hot labels)`; `train_` calls
# the loss on each, takes the gradient with respect to `params(model)` and steps `ADAM`.
# The step is compiled once, and a whole epoch runs on the device in a few chunks. The
# callback `evaluate` runs after every chunk and records the test accuracy.

# %%
targets = fj.onehotbatch(y_train, range(10))
loader = DataLoader((x_train, targets), batchsize=32, shuffle=True, key=0)


def loss(x, y):
    return logitcrossentropy(model(x), y)


def accuracy(m, x, y):
    return float(np.mean(np.asarray(fj.onecold(m(x))) == y))


trace = []


def evaluate():
    trace.append(accuracy(model, x_test, y_test))


epochs = 20
losses = train_(
    loss, fj.params(model), loader, ADAM(3e-3), cb=evaluate, epochs=epochs, progress=False
)
print(f"trained {epochs} epochs ({len(losses)} steps), last loss {float(losses[-1]):.4f}")
print(f"test accuracy: {accuracy(model, x_test, y_test):.4f}")

# %% [markdown]
# `train_` returns the loss of every step. Both curves below are drawn per epoch: the mean
# training loss, and the test accuracy at the end of each epoch (the last callback of it).

# %%
losses = np.asarray(losses)
epoch_loss = losses.reshape(epochs, -1).mean(axis=1)
epoch_acc = np.asarray(trace).reshape(epochs, -1)[:, -1]
ep = np.arange(1, epochs + 1)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
ax1.semilogy(ep, epoch_loss, "o-")
ax1.set(title="training loss", xlabel="epoch", ylabel="mean logitcrossentropy")
ax2.plot(ep, epoch_acc, "o-", color="tab:green")
ax2.set(title="test accuracy", xlabel="epoch", ylabel="fraction correct")
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# Some test digits with the model's predictions. A wrong one is shown in red, with the
# true label in brackets; mistakes are put first.

# %%
predicted = np.asarray(fj.onecold(model(x_test)))
wrong = np.flatnonzero(predicted != y_test)
picks = np.concatenate([wrong, np.flatnonzero(predicted == y_test)])[:24]

fig, axes = plt.subplots(3, 8, figsize=(10, 4.8))
for ax, i in zip(axes.flat, picks):
    ax.imshow(x_test[i].reshape(8, 8), cmap="gray_r")
    ok = predicted[i] == y_test[i]
    ax.set_title(
        f"{predicted[i]}" if ok else f"{predicted[i]} ({y_test[i]})",
        color="black" if ok else "tab:red",
    )
    ax.axis("off")
fig.suptitle(f"{len(wrong)} of {len(y_test)} test digits misclassified")
fig.tight_layout()

# %% [markdown]
# ## Saving and loading
#
# `save` writes every array of the model to a safetensors file (no pickle), named by its
# place in the model (`0.W`, `0.b`, `1.W`, ...). `load` fills a model of the same shape.
# A freshly built model guesses at chance level; after loading it predicts exactly as
# the trained one does.

# %%
import tempfile
from pathlib import Path

path = Path(tempfile.mkdtemp()) / "digits.safetensors"
fj.save(path, model)

fresh = build()
print(f"fresh model:  accuracy {accuracy(fresh, x_test, y_test):.3f}")
fj.load(path, fresh)
print(f"after load:   accuracy {accuracy(fresh, x_test, y_test):.3f}")
print(
    "same predictions as the trained model:",
    np.array_equal(np.asarray(fj.onecold(fresh(x_test))), predicted),
)
