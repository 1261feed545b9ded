# %% [markdown]
# # Model-building basics, in Python
#
# This notebook walks through Flux.jl's *Model-Building Basics* page with fluxjax: each
# Julia code block of that page appears here, in the same order, as Python. The story
# is the same: start from a hand-written linear regression, let the tracker compute its
# gradients, then factor the repetition away until we arrive at `Dense` and `Chain`.
#
# Two conventions differ from Julia: indices start at 0, and arrays are *batch first*
# (a single sample is a 1-D vector, so the page's `W * x .+ b` is simply `W @ x + b`).
# Numbers are float32, JAX's default.

# %%
import numpy as np

import fluxjax as fj
from fluxjax import Chain, Dense, back_, compose, grad, param, softmax, update_, σ

rng = np.random.default_rng(0)  # stands in for Julia's global rand / randn

# %% [markdown]
# ## Taking gradients
#
# A linear regression predicts a 2-vector `y` from a 5-vector `x`. At first `W` and `b`
# are ordinary NumPy arrays, and the loss is an ordinary number.

# %%
W = rng.random((2, 5))
b = rng.random(2)


def predict(x):
    return W @ x + b


def loss(x, y):
    return ((predict(x) - y) ** 2).sum()


x, y = rng.random(5), rng.random(2)  # dummy data
loss(x, y)

# %% [markdown]
# Marking `W` and `b` as trainable parameters with `param` is all it takes for the
# tracker to follow them. The same loss now comes back *tracked*: it remembers how it was
# computed, and `back_` (Flux's `back!`) pushes the gradient of the loss back into every
# parameter it depends on.

# %%
W = param(W)
b = param(b)

l = loss(x, y)

back_(l)
l

# %% [markdown]
# `grad(W)` reads the accumulated gradient. `update_` (Flux's `update!`) adds a step to
# the parameter and resets its gradient; a small step against the gradient lowers the loss.

# %%
Δ = grad(W)

# Update the parameter and reset the gradient
update_(W, -0.1 * Δ)

loss(x, y)

# %% [markdown]
# ## Building layers
#
# Two affine layers with a sigmoid between them, written out by hand. `σ` is a legal
# Python name and works elementwise on whole arrays, so Julia's `σ.(...)` is just `σ(...)`.

# %%
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


# %% [markdown]
# That repeats itself. A function that *returns* a layer removes the repetition. Julia
# can reach into a closure's captured variables (`linear1.W`); in Python we get the same
# effect by attaching the params to the returned function as attributes.


# %%
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

# %%
linear1.W.shape, linear1.b.shape

# %% [markdown]
# The equivalent object-oriented version: a small dataclass holding `W` and `b`, with
# `__call__` so an instance is used like a function. Julia adds a second constructor
# taking two sizes; here `__post_init__` plays that part, so `Affine(10, 5)` makes random
# params while `Affine(W, b)` takes arrays as they are.

# %%
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

# %% [markdown]
# That is, give or take an activation function, the `Dense` layer that ships with
# fluxjax. `Dense` keeps the `(out, in)` weight layout and also accepts a batch of
# samples, one per row.

# %%
d = Dense(10, 5, σ)
d

# %%
d.W.shape, d(rng.random(10)).shape, d(rng.random((3, 10))).shape

# %% [markdown]
# ## Stacking it up
#
# Models are often one layer applied to the output of another:

# %%
layer1 = Dense(10, 5, σ)
layer2 = Dense(5, 2)
layer3 = softmax


def model(x):
    return layer3(layer2(layer1(x)))


model(rng.random(10))

# %% [markdown]
# With many layers a list reads better. Julia's `foldl` is `functools.reduce` in Python:
# start from `x` and feed it through each layer in turn.

# %%
from functools import reduce

layers = [Dense(10, 5, σ), Dense(5, 2), softmax]


def model(x):
    return reduce(lambda x, m: m(x), layers, x)


model(rng.random(10))  # a 2-element vector

# %% [markdown]
# `Chain` packages exactly that fold, and prints itself readably.

# %%
model2 = Chain(
    Dense(10, 5, σ),
    Dense(5, 2),
    softmax,
)

model2(rng.random(10))  # a 2-element vector

# %%
print(model2)

# %% [markdown]
# Since models are just functions, stacking layers is function composition. Python has
# no `∘` operator, so fluxjax spells it `compose(f, g)`, which means "`f` after `g`".

# %%
m = compose(Dense(5, 2), Dense(10, 5, σ))

m(rng.random(10))

# %% [markdown]
# `Chain` accepts any callable as a layer, not only fluxjax layers:

# %%
m = Chain(lambda x: x**2, lambda x: x + 1)

m(5)  # 26

# %% [markdown]
# ## Layer helpers
#
# `treelike` registers a class of our own with fluxjax (and with JAX, as a pytree). After
# it, the helpers that work on built-in layers work on `Affine` too: `params` collects its
# trainable arrays, and `gpu` moves it to a GPU (returning it unchanged on a machine
# without one, as here).

# %%
fj.treelike(Affine)

fj.params(a)

# %%
a_gpu = fj.gpu(a)
type(a_gpu).__name__, a_gpu.W.shape, [str(dev) for dev in a_gpu.W.data.devices()]

# %% [markdown]
# A registered model can also be differentiated as a whole: the gradient comes back with
# the same structure as the model.

# %%
xs = rng.random(10)
g = fj.gradient(lambda m: (m(xs) ** 2).sum(), a)[0]
type(g).__name__, g.W.shape, g.b.shape
