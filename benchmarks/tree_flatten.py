"""What a compiled call pays to flatten and unflatten a model: fluxjax vs Equinox.

    python -m benchmarks.tree_flatten

A 3-layer MLP of the "small" size (64→256→256→10) as `fluxjax.Chain` of `Dense` and as an
Equinox module holding three `eqx.nn.Linear`, timed with `jax.tree_util.tree_flatten`,
`tree_unflatten`, and a `jax.jit` call of an identity-shaped function (`m -> m(x)` on a
tiny input, so the call overhead dominates). Medians of interleaved rounds, µs per call.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp

import fluxjax as fj


def _models():
    fj.seed(0)
    flux = fj.Chain(fj.Dense(64, 256, fj.relu), fj.Dense(256, 256, fj.relu), fj.Dense(256, 10))
    import equinox as eqx

    class MLP(eqx.Module):
        layers: tuple

        def __init__(self, key):
            k1, k2, k3 = jax.random.split(key, 3)
            self.layers = (
                eqx.nn.Linear(64, 256, key=k1),
                eqx.nn.Linear(256, 256, key=k2),
                eqx.nn.Linear(256, 10, key=k3),
            )

        def __call__(self, x):
            x = jax.nn.relu(x @ self.layers[0].weight.T + self.layers[0].bias)
            x = jax.nn.relu(x @ self.layers[1].weight.T + self.layers[1].bias)
            return x @ self.layers[2].weight.T + self.layers[2].bias

    return {"fluxjax Chain": flux, "equinox MLP": MLP(jax.random.key(0))}


def _time(f, n):
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e6


def main() -> int:
    x = jnp.ones((1, 64))
    cases = {}
    for name, m in _models().items():
        leaves, treedef = jax.tree_util.tree_flatten(m)
        call = jax.jit(lambda m, x: m(x))
        jax.block_until_ready(call(m, x))
        cases[name] = {
            "flatten": lambda m=m: jax.tree_util.tree_flatten(m),
            "unflatten": lambda t=treedef, ls=leaves: jax.tree_util.tree_unflatten(t, ls),
            "jit call": lambda m=m, c=call: jax.block_until_ready(c(m, x)),
        }
    results = {(n, k): [] for n, c in cases.items() for k in c}
    for _ in range(15):
        for name, fns in cases.items():
            for what, f in fns.items():
                results[(name, what)].append(_time(f, 300))
    print("| model | flatten µs | unflatten µs | jax.jit call µs |\n|---|---:|---:|---:|")
    for name in cases:
        row = [statistics.median(results[(name, w)]) for w in ("flatten", "unflatten", "jit call")]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
