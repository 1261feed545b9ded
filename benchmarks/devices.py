"""Data parallel `train_(..., devices=n)`: steps per second and bytes per device against n.

    python -m benchmarks.devices [--sizes tiny,small] [--counts 1,2,4] [--rounds 9]

Each device count runs in its own process with 4 forced CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4`); n = 1 is the default path
(`devices=None`), n > 1 is `devices=n`. Per size, the benchmark MLP (`_peers.SIZES`) with
Adam, timed as in `run.py` (`_harness.interleave`): `train_` per step over a list of
batches, and `train_` over a `DataLoader` (the whole-epoch `lax.scan` path), beside a
hand-written `jax.jit` step on the same mesh (params and Adam state replicated and donated,
each batch `jax.device_put` split along its first axis; on several CPU devices each call
is waited for, as `train_` does, since XLA's CPU all-reduce can deadlock with several
programs in flight). Memory: the
bytes one device holds for the params and Adam state of the medium MLP
(784→1024→1024→10), replicated and with `shard_params=True`, read from the arrays'
`addressable_shards`. On CPU devices that share a few cores, expect no speedup: the point
is that the results are right and the overhead is small.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _jax_step(size, n: int):
    """The baseline: a `jax.jit` step over a 1-D mesh of the first n devices."""
    from functools import partial

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from benchmarks import _peers
    from benchmarks._harness import Step

    mesh = Mesh(np.array(jax.devices()[:n]), ("data",))
    split, whole = NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())
    tx = _peers.optax_tx("adam")
    params = jax.device_put(_peers._init_flat(size), whole)
    state = jax.device_put(tx.init(params), whole)
    x, y = (a[0] for a in _peers.batches(size))  # NumPy: the fastest way to split on CPU
    if n == 1:
        x, y = jax.device_put((x, y), whole)
    step = jax.jit(partial(_peers._flat_update, tx), donate_argnums=(0, 1))

    def run():
        nonlocal params, state
        if n == 1:  # as the one-device contenders of run.py: the batch is on the device
            params, state, loss = step(params, state, x, y)
            return loss
        params, state, loss = step(params, state, *jax.device_put((x, y), split))
        return loss.block_until_ready()  # as train_ does on several CPU devices: see settle

    return Step(run)


def _train_steps(size, devices):
    """`train_` per step (a list of batches) and over a `DataLoader` (`lax.scan`)."""
    import fluxjax as fj
    from benchmarks import _fluxjax_contenders as fc
    from benchmarks._harness import Step

    m, m2, opt, opt2 = fc._model(size), fc._model(size), fj.ADAM(1e-3), fj.ADAM(1e-3)
    data = [fc._batch(size)] * fc.PER_CALL[size.name]
    xs, ys = fc.batches(size, size.scan_steps)
    loader = fj.DataLoader((xs.reshape(-1, size.n_in), ys.reshape(-1, size.n_out)), size.batch)

    def loss(x, y):
        return fj.mse(m(x), y)

    def loss2(x, y):
        return fj.mse(m2(x), y)

    return {
        "train_": Step(lambda: fj.train_(loss, m, data, opt, devices=devices), len(data)),
        "train_ scan": Step(
            lambda: fj.train_(loss2, m2, loader, opt2, devices=devices), size.scan_steps
        ),
    }


def _bytes(devices, shard_params):
    """Max bytes on one device of the medium MLP's params and Adam state in `train_`."""
    import fluxjax as fj
    from benchmarks import _fluxjax_contenders as fc
    from benchmarks._peers import SIZES
    from fluxjax.train import _sharding
    from fluxjax.train._steps import Compiled

    m = fc._model(SIZES["medium"])
    lay = _sharding.layout(devices, shard_params)
    runner = Compiled(lambda x: fj.mse(m(x), x), list(fj.params(m)), fj.ADAM(1e-3), lay)
    return max(_sharding.device_bytes((runner.arrays, runner.state)).values())


def _child(n: int, sizes: list[str], rounds: int) -> dict:
    from benchmarks._harness import interleave
    from benchmarks._peers import SIZES

    devices = None if n == 1 else n
    out = {"n": n, "steps_per_s": {}, "bytes": {"replicated": _bytes(devices, False)}}
    if n > 1:
        out["bytes"]["fsdp"] = _bytes(devices, True)
    for name in sizes:
        steps = {"jax.jit": _jax_step(SIZES[name], n), **_train_steps(SIZES[name], devices)}
        res = interleave(steps, rounds=rounds, block_s=0.3)
        out["steps_per_s"][name] = {k: 1e6 / r.median for k, r in res.items()}
    return out


def _run_child(n: int, sizes: list[str], rounds: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    args = ["--child", str(n), "--sizes", ",".join(sizes), "--rounds", str(rounds)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.devices", *args],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the child for {n} devices failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict], sizes: list[str]) -> str:
    kinds = ("jax.jit", "train_", "train_ scan")
    head = ["devices"] + [f"{s} {k} steps/s" for s in sizes for k in kinds]
    head += ["medium MLP + Adam, MB/device replicated", "with shard_params"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in results:
        rates = [r["steps_per_s"][s][k] for s in sizes for k in kinds]
        mb = [r["bytes"].get(k) for k in ("replicated", "fsdp")]
        cells = [str(r["n"])] + [f"{v:,.0f}" for v in rates]
        cells += ["–" if v is None else f"{v / 1e6:.2f}" for v in mb]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--counts", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")
    if args.child is not None:
        print(json.dumps(_child(args.child, sizes, args.rounds)))
        return 0
    load, started = os.getloadavg()[0], time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = [_run_child(int(n), sizes, args.rounds) for n in args.counts.split(",")]
    print(f"{started}, {os.cpu_count()} CPU cores, {args.rounds} rounds; 1-minute load")
    print(f"average {load:.2f} before, {os.getloadavg()[0]:.2f} after.\n")
    print(table(results, sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
