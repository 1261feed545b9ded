"""``python -m fluxjax.demo``: an MLP learns scikit-learn's 8×8 handwritten digits.

The whole Flux workflow on a real (small, bundled) data set: a ``Chain`` of ``Dense``
layers, ``logitcrossentropy`` on one-hot labels, ``DataLoader(shuffle=True)``, ``ADAM``
and ``train_`` with a progress bar; then the test accuracy, a checkpoint written with
``fluxjax.save`` (and read back with ``fluxjax.load`` to check it), and a PNG with the
learning curves and a grid of test digits with their predicted labels.

    python -m fluxjax.demo --epochs 20 --hidden 128 --lr 3e-3 --out out

``main(argv)`` returns a dict (accuracy, paths, per-epoch history) so tests can call it.
Needs the ``demo`` extra: scikit-learn, matplotlib, tqdm, safetensors.
"""

from __future__ import annotations

import argparse
import os
import time

import jax.numpy as jnp
import numpy as np

import fluxjax as fj
from fluxjax._optional import require

SPLIT_SEED = 0  # the train/test split never changes, whatever --seed says
N_TRAIN = 1500  # of sklearn's 1797 digits; the other 297 are the test set


def load_digits_split():
    """``(x_train, y_train, x_test, y_test)``: 8×8 digits flattened to 64 values in [0, 1].

    The split is a fixed random permutation (``SPLIT_SEED``): 1500 train, 297 test.
    Labels are integer arrays 0..9.
    """
    datasets = require("sklearn.datasets", "demo", "the digits demo")
    images, labels = datasets.load_digits(return_X_y=True)
    x = (images / 16.0).astype(np.float32)  # pixel intensities are 0..16
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    train, test = order[:N_TRAIN], order[N_TRAIN:]
    return x[train], labels[train], x[test], labels[test]


def build_model(hidden: int, kind: str = "mlp") -> fj.Chain:
    """The classifier: 64 pixels → ``hidden`` → ``hidden`` → 10 raw class scores; or, for
    ``kind="cnn"``, the pixels as an 8×8 image through two 3×3 convolutions (``hidden ÷ 8``
    and ``hidden ÷ 4`` channels), each followed by 2×2 max pooling, then ``Dense``."""
    if kind == "cnn":
        c1, c2 = max(1, hidden // 8), max(1, hidden // 4)
        return fj.Chain(
            as_images,
            fj.Conv((3, 3), 1, c1, fj.relu, pad=1),
            fj.MaxPool((2, 2)),
            fj.Conv((3, 3), c1, c2, fj.relu, pad=1),
            fj.MaxPool((2, 2)),
            flatten,
            fj.Dense(4 * c2, 10),
        )
    return fj.Chain(
        fj.Dense(64, hidden, fj.relu),
        fj.Dense(hidden, hidden, fj.relu),
        fj.Dense(hidden, 10),
    )


def as_images(x):
    """Rows of 64 pixels as a batch of 8×8 one-channel images ``(n, 8, 8, 1)``."""
    return x.reshape(x.shape[0], 8, 8, 1)


def flatten(x):
    """``(n, …)`` → ``(n, features)``."""
    return x.reshape(x.shape[0], -1)


def predict(model, x) -> np.ndarray:
    """The predicted digit (0..9) for each row of ``x``."""
    return np.asarray(fj.onecold(model(x)))


def accuracy(model, x, labels) -> float:
    """The fraction of rows of ``x`` whose predicted digit equals ``labels``."""
    return float(np.mean(predict(model, x) == np.asarray(labels)))


def train(model, data, *, epochs, lr, batchsize, seed, progress):
    """Train ``model`` in place; returns the per-step losses and the test-accuracy trace.

    ``train_`` calls the callback a fixed number of times per epoch (a few chunks of
    compiled steps each), so the accuracy after each call is recorded and the last one
    of every epoch is that epoch's accuracy.
    """
    x_train, y_train, x_test, y_test = data
    targets = np.asarray(fj.onehotbatch(y_train, range(10)))
    loader = fj.DataLoader((x_train, targets), batchsize, shuffle=True, key=seed)
    x_test = jnp.asarray(x_test)

    def loss(x, y):
        return fj.logitcrossentropy(model(x), y)

    trace = []

    def evaluate():
        trace.append(accuracy(model, x_test, y_test))

    losses = fj.train_(
        loss, fj.params(model), loader, fj.ADAM(lr), cb=evaluate, epochs=epochs, progress=progress
    )
    return np.asarray(losses), np.asarray(trace)


def history(losses, trace, epochs):
    """Per-epoch mean training loss and end-of-epoch test accuracy, from ``train``'s output."""
    epoch_loss = losses.reshape(epochs, -1).mean(axis=1)
    epoch_acc = trace.reshape(epochs, -1)[:, -1]
    return epoch_loss, epoch_acc


def _digit_picks(predicted, truth, n=24):
    """Indices of ``n`` test digits to show: every mistake (up to a quarter), then the rest."""
    wrong = np.flatnonzero(predicted != truth)[: n // 4]
    right = np.flatnonzero(predicted == truth)[: n - len(wrong)]
    return np.sort(np.concatenate([wrong, right]))


def plot(path, losses, trace, epochs, images, predicted, truth):
    """Write the summary figure: learning curves on the left, test digits on the right."""
    # no pyplot: no global backend, nothing shown
    Figure = require("matplotlib.figure", "demo", "the demo's figure").Figure
    fig = Figure(figsize=(13, 6.2), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.15])
    _plot_curves(left, losses, trace, epochs, len(truth))
    _plot_digits(right, images, predicted, truth)
    fig.savefig(path, dpi=110)


def _plot_curves(panel, losses, trace, epochs, ntest):
    """The training loss (above) and the test accuracy (below), per step and per epoch."""
    MaxNLocator = require("matplotlib.ticker", "demo", "the demo's figure").MaxNLocator
    epoch_loss, epoch_acc = history(losses, trace, epochs)
    ep = np.arange(1, epochs + 1)
    ax_loss, ax_acc = panel.subplots(2, 1, sharex=True)
    steps = np.arange(1, len(losses) + 1) / (len(losses) / epochs)
    ax_loss.plot(steps, losses, color="tab:blue", alpha=0.25, lw=0.8, label="each step")
    ax_loss.plot(ep, epoch_loss, "o-", color="tab:blue", ms=4, label="epoch mean")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("train loss (log scale)")
    ax_loss.set_title("Training loss (logitcrossentropy)")
    ax_loss.legend(frameon=False)
    ax_loss.grid(alpha=0.3)

    calls = np.arange(1, len(trace) + 1) / (len(trace) / epochs)
    ax_acc.plot(calls, trace, color="tab:green", alpha=0.3, lw=0.8, label="each callback")
    ax_acc.plot(ep, epoch_acc, "o-", color="tab:green", ms=4, label="end of epoch")
    ax_acc.set_ylim(max(0.0, min(epoch_acc.min(), 0.9) - 0.02), 1.005)
    ax_acc.set_xlabel("epoch")
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.set_ylabel("test accuracy")
    ax_acc.set_title(f"Test accuracy (final {epoch_acc[-1]:.1%} on {ntest} digits)")
    ax_acc.legend(frameon=False, loc="lower right")
    ax_acc.grid(alpha=0.3)


def _plot_digits(panel, images, predicted, truth):
    """A grid of test digits with their predicted labels (mistakes in red)."""
    panel.suptitle("Test digits: predicted label (red: wrong, true label in brackets)")
    cells = panel.subplots(4, 6)
    for ax in cells.flat:
        ax.set_axis_off()
    for ax, i in zip(cells.flat, _digit_picks(predicted, truth)):
        ax.imshow(images[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ok = predicted[i] == truth[i]
        label = f"{predicted[i]}" if ok else f"{predicted[i]} ({truth[i]})"
        ax.set_title(label, color="black" if ok else "tab:red", fontsize=13, weight="bold")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m fluxjax.demo",
        description="Train an MLP on scikit-learn's 8x8 digits with fluxjax; save the model "
        "and a figure of the learning curves and predictions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--epochs", type=int, default=20, help="passes over the 1500 training digits")
    p.add_argument("--hidden", type=int, default=128, help="width of the two hidden layers")
    p.add_argument(
        "--model", choices=("mlp", "cnn"), default="mlp", help="Dense layers or convolutions"
    )
    p.add_argument("--lr", type=float, default=3e-3, help="ADAM learning rate η")
    p.add_argument("--batchsize", type=int, default=32, help="digits per training step")
    p.add_argument("--seed", type=int, default=0, help="initial weights and shuffling")
    p.add_argument("--out", default="out", help="folder for digits.safetensors and digits.png")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.hidden < 1 or args.batchsize < 1:
        p.error("--epochs, --hidden and --batchsize must be at least 1")
    return args


def _save_and_reload(args, model, x_test, predicted):
    """``(path, same)``: the model saved under ``args.out``, and whether a fresh model
    loaded from it predicts the same digits."""
    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "digits.safetensors")
    fj.save(checkpoint, model)
    reloaded = fj.load(checkpoint, build_model(args.hidden, args.model))
    same = bool(np.array_equal(predict(reloaded, x_test), predicted))
    print(f"model saved to {checkpoint} (reloaded: same predictions: {same})")
    return checkpoint, same


def main(argv=None) -> dict:
    """Run the demo with command-line ``argv``; returns what it measured and wrote."""
    args = parse_args(argv)
    data = load_digits_split()
    x_train, _, x_test, y_test = data
    print(f"digits: {len(x_train)} train, {len(x_test)} test, 8x8 pixels scaled to [0, 1]")

    fj.seed(args.seed)
    model = build_model(args.hidden, args.model)
    print(f"model:  {model}")
    start = time.perf_counter()
    settings = dict(epochs=args.epochs, lr=args.lr, batchsize=args.batchsize, seed=args.seed)
    losses, trace = train(model, data, progress=not args.no_progress, **settings)
    seconds = time.perf_counter() - start
    predicted = predict(model, x_test)
    acc = float(np.mean(predicted == y_test))
    print(f"trained {args.epochs} epochs ({len(losses)} steps) in {seconds:.1f} s")
    print(f"test accuracy: {acc:.4f} ({int(round(acc * len(y_test)))}/{len(y_test)} digits)")

    checkpoint, same = _save_and_reload(args, model, x_test, predicted)
    figure = os.path.join(args.out, "digits.png")
    plot(figure, losses, trace, args.epochs, x_test, predicted, y_test)
    print(f"figure saved to {figure}")

    epoch_loss, epoch_acc = history(losses, trace, args.epochs)
    return {
        "accuracy": acc,
        "checkpoint": checkpoint,
        "figure": figure,
        "seconds": seconds,
        "epoch_loss": epoch_loss,
        "epoch_accuracy": epoch_acc,
        "reloaded_same": same,
    }


if __name__ == "__main__":
    main()
