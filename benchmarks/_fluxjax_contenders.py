"""fluxjax contenders for `benchmarks/run.py` (placeholder: none registered yet).

Register fluxjax's ways of training the benchmark MLP here, with the same signature as the
factories in `benchmarks/_peers.py`:

    factory(size: Size, opt: str) -> Step | None

`size` is a `benchmarks._peers.Size`, `opt` is "sgd" (lr 0.01) or "adam" (lr 1e-3); return a
`benchmarks._harness.Step` whose `run()` does one training step (or `Step(run, steps=n)` for
n steps per call) and returns the loss, or `None` when the contender does not apply to `opt`.
Build the model from `fluxjax.Dense`/`Chain`, train on `benchmarks._peers.batches(size)` with
the MSE loss, and use `fluxjax.Descent(0.01)` / `fluxjax.ADAM(1e-3)` so the numbers compare
with the peers. Contenders meant to go here:

- "fluxjax train_": `train_(loss, params(m), [(x, y)], opt)` called once per step (jit=True),
  i.e. the per-call overhead of the high-level loop;
- "fluxjax train_ DataLoader": one `train_` over a `DataLoader` of `size.scan_steps` batches
  (the scan path, if `train_` compiles the whole pass), reported per step;
- "fluxjax tracker eager": the seed-style imperative loop, `l = loss(x, y); back_(l);`
  then `update_(opt, ps, grads)` (or `update_(p, -η * grad(p))` for SGD), uncompiled;
- "fluxjax.jit seed step": the same seed-style step wrapped in `fluxjax.jit`.

An ImportError or any other error while importing this module is caught by `run.py`, which
prints it and runs the peers alone.
"""

from __future__ import annotations

from collections.abc import Callable

CONTENDERS: dict[str, Callable] = {}
