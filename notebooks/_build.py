"""Writes the notebooks in this folder from the cell lists below, and runs them.

    python notebooks/_build.py            # write the .ipynb files (no outputs)
    python notebooks/_build.py --execute  # write them, then run each and store the outputs

The notebooks are generated so that a review reads Python, not JSON. Edit the cells
here, never the .ipynb files. Execution uses the ``python3`` kernel (``make demo`` or
``make test`` installs one into ``.venv``) with this folder as the working directory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNEL = "python3"
CELL_TIMEOUT = 120  # seconds


def md(text):
    return new_markdown_cell(dedent(text).strip())


def py(text):
    return new_code_cell(dedent(text).strip())


# --------------------------------------------------------------------------------------
# 01: Flux's "Model-Building Basics", every code block in order, in Python
# --------------------------------------------------------------------------------------

BASICS = [
    md("""
    # Model-building basics, in Python

    This notebook walks through Flux.jl's *Model-Building Basics* page with fluxjax: each
    Julia code block of that page appears here, in the same order, as Python. The story
    is the same: start from a hand-written linear regression, let the tracker compute its
    gradients, then factor the repetition away until we arrive at `Dense` and `Chain`.

    Two conventions differ from Julia: indices start at 0, and arrays are *batch first*
    (a single sample is a 1-D vector, so the page's `W * x .+ b` is simply `W @ x + b`).
    Numbers are float32, JAX's default.
    """),
    py("""
    import numpy as np

    import fluxjax as fj
    from fluxjax import Chain, Dense, back_, compose, grad, param, softmax, update_, σ

    rng = np.random.default_rng(0)  # stands in for Julia's global rand / randn
    """),
    md("""
    ## Taking gradients

    A linear regression predicts a 2-vector `y` from a 5-vector `x`. At first `W` and `b`
    are ordinary NumPy arrays, and the loss is an ordinary number.
    """),
    py("""
    W = rng.random((2, 5))
    b = rng.random(2)


    def predict(x):
        return W @ x + b


    def loss(x, y):
        return ((predict(x) - y) ** 2).sum()


    x, y = rng.random(5), rng.random(2)  # dummy data
    loss(x, y)
    """),
    md("""
    Marking `W` and `b` as trainable parameters with `param` is all it takes for the
    tracker to follow them. The same loss now comes back *tracked*: it remembers how it was
    computed, and `back_` (Flux's `back!`) pushes the gradient of the loss back into every
    parameter it depends on.
    """),
    py("""
    W = param(W)
    b = param(b)

    l = loss(x, y)

    back_(l)
    l
    """),
    md("""
    `grad(W)` reads the accumulated gradient. `update_` (Flux's `update!`) adds a step to
    the parameter and resets its gradient; a small step against the gradient lowers the loss.
    """),
    py("""
    Δ = grad(W)

    # Update the parameter and reset the gradient
    update_(W, -0.1 * Δ)

    loss(x, y)
    """),
    md("""
    ## Building layers

    Two affine layers with a sigmoid between them, written out by hand. `σ` is a legal
    Python name and works elementwise on whole arrays, so Julia's `σ.(...)` is just `σ(...)`.
    """),
    py("""
    W1 = param(rng.random((3, 5)))
    b1 = param(rng.random(3))


    def layer1(x):
        return W1 @ x + b1


    W2 = param(rng.random((2, 3)))
    b2 = param(rng.random(2))


    def layer2(x):
        return W2 @ x + b2


    def model(x):
        return layer2(σ(layer1(x)))


    model(rng.random(5))  # a 2-element vector
    """),
    md("""
    That repeats itself. A function that *returns* a layer removes the repetition. Julia
    can reach into a closure's captured variables (`linear1.W`); in Python we get the same
    effect by attaching the params to the returned function as attributes.
    """),
    py("""
    def linear(n_in, n_out):
        W = param(rng.standard_normal((n_out, n_in)))
        b = param(rng.standard_normal(n_out))

        def layer(x):
            return W @ x + b

        layer.W, layer.b = W, b  # so linear1.W works, as in the Julia version
        return layer


    linear1 = linear(5, 3)
    linear2 = linear(3, 2)


    def model(x):
        return linear2(σ(linear1(x)))


    model(x)  # a 2-element vector
    """),
    py("""
    linear1.W.shape, linear1.b.shape
    """),
    md("""
    The equivalent object-oriented version: a small dataclass holding `W` and `b`, with
    `__call__` so an instance is used like a function. Julia adds a second constructor
    taking two sizes; here `__post_init__` plays that part, so `Affine(10, 5)` makes random
    params while `Affine(W, b)` takes arrays as they are.
    """),
    py("""
    from dataclasses import dataclass
    from typing import Any


    @dataclass
    class Affine:
        W: Any
        b: Any

        def __post_init__(self):
            if isinstance(self.W, int) and isinstance(self.b, int):  # Affine(in, out)
                n_in, n_out = self.W, self.b
                self.W = param(rng.standard_normal((n_out, n_in)))
                self.b = param(rng.standard_normal(n_out))

        # Define call, so the object can be used as a function
        def __call__(self, x):
            return self.W @ x + self.b


    a = Affine(10, 5)

    a(rng.random(10))  # a 5-element vector
    """),
    md("""
    That is, give or take an activation function, the `Dense` layer that ships with
    fluxjax. `Dense` keeps the `(out, in)` weight layout and also accepts a batch of
    samples, one per row.
    """),
    py("""
    d = Dense(10, 5, σ)
    d
    """),
    py("""
    d.W.shape, d(rng.random(10)).shape, d(rng.random((3, 10))).shape
    """),
    md("""
    ## Stacking it up

    Models are often one layer applied to the output of another:
    """),
    py("""
    layer1 = Dense(10, 5, σ)
    layer2 = Dense(5, 2)
    layer3 = softmax


    def model(x):
        return layer3(layer2(layer1(x)))


    model(rng.random(10))
    """),
    md("""
    With many layers a list reads better. Julia's `foldl` is `functools.reduce` in Python:
    start from `x` and feed it through each layer in turn.
    """),
    py("""
    from functools import reduce

    layers = [Dense(10, 5, σ), Dense(5, 2), softmax]


    def model(x):
        return reduce(lambda x, m: m(x), layers, x)


    model(rng.random(10))  # a 2-element vector
    """),
    md("""
    `Chain` packages exactly that fold, and prints itself readably.
    """),
    py("""
    model2 = Chain(
        Dense(10, 5, σ),
        Dense(5, 2),
        softmax)

    model2(rng.random(10))  # a 2-element vector
    """),
    py("""
    print(model2)
    """),
    md("""
    Since models are just functions, stacking layers is function composition. Python has
    no `∘` operator, so fluxjax spells it `compose(f, g)`, which means "`f` after `g`".
    """),
    py("""
    m = compose(Dense(5, 2), Dense(10, 5, σ))

    m(rng.random(10))
    """),
    md("""
    `Chain` accepts any callable as a layer, not only fluxjax layers:
    """),
    py("""
    m = Chain(lambda x: x**2, lambda x: x + 1)

    m(5)  # 26
    """),
    md("""
    ## Layer helpers

    `treelike` registers a class of our own with fluxjax (and with JAX, as a pytree). After
    it, the helpers that work on built-in layers work on `Affine` too: `params` collects its
    trainable arrays, and `gpu` moves it to a GPU (returning it unchanged on a machine
    without one, as here).
    """),
    py("""
    fj.treelike(Affine)

    fj.params(a)
    """),
    py("""
    a_gpu = fj.gpu(a)
    type(a_gpu).__name__, a_gpu.W.shape, [str(dev) for dev in a_gpu.W.data.devices()]
    """),
    md("""
    A registered model can also be differentiated as a whole: the gradient comes back with
    the same structure as the model.
    """),
    py("""
    xs = rng.random(10)
    g = fj.gradient(lambda m: (m(xs) ** 2).sum(), a)[0]
    type(g).__name__, g.W.shape, g.b.shape
    """),
]


# --------------------------------------------------------------------------------------
# 02: the tracker notes (seed 003)
# --------------------------------------------------------------------------------------

TRACKER = [
    md("""
    # Tracker notes: `gradient`, `param` and `Params`

    Study notes on how fluxjax's tracker computes gradients, following a reader's notebook
    on Flux's *Model-Building Basics*. fluxjax, like Flux's Tracker, does reverse-mode
    automatic differentiation: operations on tracked values are recorded, and gradients
    are computed by walking that record backwards (JAX does the actual differentiation of
    each recorded step).
    """),
    py("""
    import numpy as np

    import fluxjax as fj
    from fluxjax import Params, gradient, param

    rng = np.random.default_rng(0)
    """),
    md("""
    ## `gradient` of a plain function

    `gradient(f, x)` returns a tuple with one gradient per argument of `f`. The result is
    itself differentiable, so the second derivative is just `gradient` applied again, with
    no special flag. For $f(x) = 3x^2 + 2x + 1$: $f'(x) = 6x + 2$ and $f''(x) = 6$.
    """),
    py("""
    def f(x):
        return 3 * x**2 + 2 * x + 1


    def df(x):
        return gradient(f, x)[0]


    def d2f(x):
        return gradient(df, x)[0]


    df(2)  # 6·2 + 2 = 14
    """),
    py("""
    d2f(2)  # 6
    """),
    md("""
    ## Many parameters at once: `Params`

    A model can have many trainable values. `param` marks one as trainable; `Params` groups
    several, and `gradient` of a *zero-argument* function with respect to a `Params`
    returns all their gradients together. The function needs no arguments because the
    `Params` already say what to differentiate. For $f(x) = Wx + b$ at $x = 4$,
    $\\partial f / \\partial W = 4$ and $\\partial f / \\partial b = 1$.
    """),
    py("""
    W = param(2)
    b = param(3)


    def f(x):
        return W * x + b


    ps = Params([W, b])
    grads = gradient(lambda: f(4), ps)

    print("grads[W] =", grads[W])
    print("grads[b] =", grads[b])
    """),
    md("""
    Tracked values act like ordinary numbers and arrays but keep a record of what was done
    to them, which is what makes the gradient computable. `gradient` is pure: it does not
    touch the params' own `.grad` (only `back_` does that).
    """),
    py("""
    y = f(4)
    y, W.grad
    """),
    md("""
    ## Building layers

    A function that returns a linear layer. The returned inner function captures `W` and
    `b`; we also attach them as attributes so they can be named from outside.
    """),
    py("""
    def linear(n_in, n_out):
        W = param(rng.standard_normal((n_out, n_in)))
        b = param(rng.standard_normal(n_out))

        def layer(x):
            return W @ x + b

        layer.W, layer.b = W, b
        return layer


    linear
    """),
    md("""
    Stack two of them, define a squared-error loss on random data, and ask for the
    gradient with respect to all four parameter arrays at once.
    """),
    py("""
    # two linear layers
    linear1 = linear(5, 3)
    linear2 = linear(3, 2)


    # stacked
    def predict(x):
        return linear2(linear1(x))


    # the loss, on random test data
    x, y = rng.random(5), rng.random(2)


    def loss(x, y):
        return ((predict(x) - y) ** 2).sum()


    # every learnable parameter of the model
    ps = Params([linear1.W, linear1.b, linear2.W, linear2.b])
    grads = gradient(lambda: loss(x, y), ps)

    grads[linear1.W]
    """),
    py("""
    grads[linear1.W].shape  # the same shape as linear1.W: (3, 5)
    """),
    md("""
    The imperative route gives the same numbers: `back_` on the tracked loss accumulates
    into each param's `.grad`.
    """),
    py("""
    fj.back_(loss(x, y))
    all(np.allclose(p.grad, grads[p]) for p in ps)
    """),
]


# --------------------------------------------------------------------------------------
# 03: a Chain trained on scikit-learn's digits
# --------------------------------------------------------------------------------------

DIGITS = [
    md("""
    # Training a `Chain` on handwritten digits

    scikit-learn ships 1797 small (8×8) images of handwritten digits, so this runs without
    a download. We train a three-layer perceptron with `train_` and `ADAM`, watch the loss
    and the test accuracy, look at some predictions, and save and reload the model.
    `python -m fluxjax.demo` (`make demo`) does the same from the command line.
    """),
    py("""
    import numpy as np
    import matplotlib.pyplot as plt
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
    """),
    md("""
    The model maps 64 pixels to 10 raw scores (logits), one per digit.
    `logitcrossentropy` applies the softmax itself, in a numerically stable way.
    """),
    py("""
    fj.seed(0)  # reproducible initial weights


    def build():
        return Chain(Dense(64, 128, relu), Dense(128, 128, relu), Dense(128, 10))


    model = build()
    model
    """),
    md("""
    `DataLoader` serves shuffled mini-batches of `(images, one-hot labels)`; `train_` calls
    the loss on each, takes the gradient with respect to `params(model)` and steps `ADAM`.
    The step is compiled once, and a whole epoch runs on the device in a few chunks. The
    callback `evaluate` runs after every chunk and records the test accuracy.
    """),
    py("""
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
    losses = train_(loss, fj.params(model), loader, ADAM(3e-3),
                    cb=evaluate, epochs=epochs, progress=True)
    print(f"test accuracy: {accuracy(model, x_test, y_test):.4f}")
    """),
    md("""
    `train_` returns the loss of every step. Both curves below are drawn per epoch: the mean
    training loss, and the test accuracy at the end of each epoch (the last callback of it).
    """),
    py("""
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
    """),
    md("""
    Some test digits with the model's predictions. A wrong one is shown in red, with the
    true label in brackets; mistakes are put first.
    """),
    py("""
    predicted = np.asarray(fj.onecold(model(x_test)))
    wrong = np.flatnonzero(predicted != y_test)
    picks = np.concatenate([wrong, np.flatnonzero(predicted == y_test)])[:24]

    fig, axes = plt.subplots(3, 8, figsize=(10, 4.8))
    for ax, i in zip(axes.flat, picks):
        ax.imshow(x_test[i].reshape(8, 8), cmap="gray_r")
        ok = predicted[i] == y_test[i]
        ax.set_title(f"{predicted[i]}" if ok else f"{predicted[i]} ({y_test[i]})",
                     color="black" if ok else "tab:red")
        ax.axis("off")
    fig.suptitle(f"{len(wrong)} of {len(y_test)} test digits misclassified")
    fig.tight_layout()
    """),
    md("""
    ## Saving and loading

    `save` writes every array of the model to a safetensors file (no pickle), named by its
    place in the model (`0.W`, `0.b`, `1.W`, ...). `load` fills a model of the same shape.
    A freshly built model guesses at chance level; after loading it predicts exactly as
    the trained one does.
    """),
    py("""
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "digits.safetensors"
    fj.save(path, model)

    fresh = build()
    print(f"fresh model:  accuracy {accuracy(fresh, x_test, y_test):.3f}")
    fj.load(path, fresh)
    print(f"after load:   accuracy {accuracy(fresh, x_test, y_test):.3f}")
    print("same predictions as the trained model:",
          np.array_equal(np.asarray(fj.onecold(fresh(x_test))), predicted))
    """),
]


NOTEBOOKS = {
    "01_model_building_basics.ipynb": BASICS,
    "02_tracker_notes.ipynb": TRACKER,
    "03_training_digits.ipynb": DIGITS,
}


def build(cells):
    nb = new_notebook(cells=[c.copy() for c in cells])
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: a rebuild changes only what really changed
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb, workdir=HERE):
    """Run ``nb`` top to bottom in place; raises ``CellExecutionError`` on any error."""
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(workdir)}},
        record_timing=False,
    )
    client.execute()
    return nb


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--execute", action="store_true", help="run each notebook, store outputs")
    p.add_argument("names", nargs="*", help="only these notebooks (default: all)")
    args = p.parse_args(argv)
    for name, cells in NOTEBOOKS.items():
        if args.names and not any(n in name for n in args.names):
            continue
        nb = build(cells)
        if args.execute:
            start = time.perf_counter()
            execute(nb)
            print(f"{name}: executed in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
