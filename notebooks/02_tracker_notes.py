# %% [markdown]
# # Tracker notes: `gradient`, `param` and `Params`
#
# Study notes on how fluxjax's tracker computes gradients, following a reader's notebook
# on Flux's *Model-Building Basics*. fluxjax, like Flux's Tracker, does reverse-mode
# automatic differentiation: operations on tracked values are recorded, and gradients
# are computed by walking that record backwards (JAX does the actual differentiation of
# each recorded step).

# %%
import numpy as np

import fluxjax as fj
from fluxjax import Params, gradient, param

rng = np.random.default_rng(0)


# %% [markdown]
# ## `gradient` of a plain function
#
# `gradient(f, x)` returns a tuple with one gradient per argument of `f`. The result is
# itself differentiable, so the second derivative is just `gradient` applied again, with
# no special flag. For $f(x) = 3x^2 + 2x + 1$: $f'(x) = 6x + 2$ and $f''(x) = 6$.


# %%
def f(x):
    return 3 * x**2 + 2 * x + 1


def df(x):
    return gradient(f, x)[0]


def d2f(x):
    return gradient(df, x)[0]


df(2)  # 6·2 + 2 = 14

# %%
d2f(2)  # 6

# %% [markdown]
# ## Many parameters at once: `Params`
#
# A model can have many trainable values. `param` marks one as trainable; `Params` groups
# several, and `gradient` of a *zero-argument* function with respect to a `Params`
# returns all their gradients together. The function needs no arguments because the
# `Params` already say what to differentiate. For $f(x) = Wx + b$ at $x = 4$,
# $\partial f / \partial W = 4$ and $\partial f / \partial b = 1$.

# %%
W = param(2)
b = param(3)


def f(x):
    return W * x + b


ps = Params([W, b])
grads = gradient(lambda: f(4), ps)

print("grads[W] =", grads[W])
print("grads[b] =", grads[b])

# %% [markdown]
# Tracked values act like ordinary numbers and arrays but keep a record of what was done
# to them, which is what makes the gradient computable. `gradient` is pure: it does not
# touch the params' own `.grad` (only `back_` does that).

# %%
y = f(4)
y, W.grad


# %% [markdown]
# ## Building layers
#
# A function that returns a linear layer. The returned inner function captures `W` and
# `b`; we also attach them as attributes so they can be named from outside.


# %%
def linear(n_in, n_out):
    W = param(rng.standard_normal((n_out, n_in)))
    b = param(rng.standard_normal(n_out))

    def layer(x):
        return W @ x + b

    layer.W, layer.b = W, b
    return layer


linear

# %% [markdown]
# Stack two of them, define a squared-error loss on random data, and ask for the
# gradient with respect to all four parameter arrays at once.

# %%
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

# %%
grads[linear1.W].shape  # the same shape as linear1.W: (3, 5)

# %% [markdown]
# The imperative route gives the same numbers: `back_` on the tracked loss accumulates
# into each param's `.grad`.

# %%
fj.back_(loss(x, y))
all(np.allclose(p.grad, grads[p]) for p in ps)
