"""Child processes of ``test_distributed.py`` (device count and jax.distributed are per
process). ``python tests/_distributed_child.py single OUT`` trains on 4 CPU devices;
``... multi I PORT OUT`` is process I of a two-process gloo run. Each writes JSON to OUT.
"""

import json
import os
import sys

import jax
import numpy as np

import fluxjax as fj
from fluxjax.train import _sharding
from fluxjax.train._steps import Compiled

BATCH = 8
LAYOUTS = {"one": {}, "all": {"devices": "all"}, "fsdp": {"devices": "all", "shard_params": True}}


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 3)).astype(np.float32), rng.normal(size=(32, 2)).astype(np.float32)


def model():
    fj.seed(0)
    return fj.Chain(fj.Dense(3, 8, fj.relu), fj.Dense(8, 2))


def batches(kind, shard=False):
    """The data of run ``kind``: a list of batches, or a DataLoader (the scan path)."""
    X, Y = data()
    if kind == "step":
        return [(X[i : i + BATCH], Y[i : i + BATCH]) for i in range(0, 32, BATCH)]
    if kind == "listed":  # per-step path over a DataLoader's own batches
        return list(fj.DataLoader((X, Y), BATCH, shuffle=True, key=1, shard=shard))
    return fj.DataLoader((X, Y), BATCH, shuffle=kind == "shuf", key=1, shard=shard)


def run(kind, devices=None, shard_params=False, shard=False, seen=None):
    """Two epochs with ``devices``, then one more ``train_`` call on one device (the
    optimiser state must carry over); returns the losses, params, and the model."""
    m = model()

    def loss(x, y):
        if seen is not None:  # the rows of x on each device, at trace time
            shape = x.shape
            jax.debug.inspect_array_sharding(
                x, callback=lambda s: seen.append(s.shard_shape(shape))
            )
        return fj.mse(m(x), y)

    opt = fj.ADAM(0.01)
    first = fj.train_(
        loss, m, batches(kind, shard), opt, epochs=2, devices=devices, shard_params=shard_params
    )
    single = all(len(p.data.devices()) == 1 for p in fj.params(m))
    second = fj.train_(loss, m, batches(kind), opt)
    record = {
        "losses": np.concatenate([np.asarray(first), np.asarray(second)]).tolist(),
        "params": [np.asarray(p.data).ravel().tolist() for p in fj.params(m)],
        "single_device_after": single,
    }
    return record, m


def guarded(devices):
    """Callbacks see the current params (per step and per scan chunk); a NaN at step 2
    stops training with the params of step 1."""
    m, seen = model(), []
    cb = lambda: seen.append(float(np.asarray(m.layers[0].W.data).sum()))  # noqa: E731
    loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
    fj.train_(loss, m, batches("step"), fj.ADAM(0.01), cb=cb, devices=devices)
    fj.train_(loss, m, batches("shuf"), fj.ADAM(0.01), cb=cb, devices=devices)
    bad = batches("step")
    bad[2] = (bad[2][0], np.full_like(bad[2][1], np.nan))  # a NaN target: a NaN loss
    try:
        fj.train_(loss, m, bad, fj.ADAM(0.01), devices=devices)
        message = None
    except FloatingPointError as e:
        message = str(e)
    params = [np.asarray(p.data).ravel().tolist() for p in fj.params(m)]
    return {"callbacks": seen, "message": message, "params": params}


def sharded_loader_errors():
    X = data()[0]
    found = []
    for make in (
        lambda: fj.DataLoader(X, 6, shard=True),
        lambda: fj.train_(
            lambda x: x.sum(),
            [fj.param(np.zeros(1))],
            fj.DataLoader(X, 8, shard=True),
            fj.ADAM(),
            devices=2,
        ),
    ):
        try:
            make()
            found.append(None)
        except ValueError as e:
            found.append(str(e))
    return found


def per_device_bytes(shard_params):
    """Max bytes on one device of the params and Adam state that train_ carries."""
    m, (X, Y) = model(), data()
    lay = _sharding.layout("all", shard_params)
    runner = Compiled(lambda x, y: fj.mse(m(x), y), list(fj.params(m)), fj.ADAM(0.01), lay)
    runner.step((X[:BATCH], Y[:BATCH]))
    runner.step((X[BATCH : 2 * BATCH], Y[BATCH : 2 * BATCH]))
    held = _sharding.device_bytes((runner.arrays, runner.state))
    return {"max": max(held.values()), "devices": len(held)}


def divisibility():
    m, (X, Y) = model(), data()
    before = [np.asarray(p.data).copy() for p in fj.params(m)]
    uneven = [(X[:8], Y[:8]), (X[:6], Y[:6])]
    try:
        fj.train_(lambda x, y: fj.mse(m(x), y), m, uneven, fj.ADAM(0.01), devices="all")
        message = None
    except ValueError as e:
        message = str(e)
    same = all(np.array_equal(b, np.asarray(p.data)) for b, p in zip(before, fj.params(m)))
    return {"message": message, "unchanged": same}


def single(out):
    results = {"devices": jax.device_count(), "runs": {}, "seen": {}}
    for kind in ("step", "seq", "shuf"):
        for name, kw in LAYOUTS.items():
            seen = [] if name == "all" else None
            results["runs"][f"{kind}_{name}"] = run(kind, seen=seen, **kw)[0]
            if seen is not None:
                results["seen"][kind] = [list(s) for s in seen]
    results["runs"]["listed_one"] = run("listed")[0]
    results["bytes"] = {"replicated": per_device_bytes(False), "fsdp": per_device_bytes(True)}
    results["divisibility"] = divisibility()
    results["guarded"] = {"one": guarded(None), "all": guarded("all")}
    results["sharded_loader_errors"] = sharded_loader_errors()
    json.dump(results, open(os.path.join(out, "single.json"), "w"))


def multi(i, port, out):
    fj.distributed.initialize(f"127.0.0.1:{port}", 2, i)
    results = {"devices": jax.device_count(), "local": jax.local_device_count(), "runs": {}}
    for kind in ("step", "seq", "shuf", "listed"):
        record, m = run(kind, devices="all", shard=True)
        results["runs"][kind] = record
    results["runs"]["step_fsdp"] = run("step", devices="all", shard_params=True)[0]
    path = os.path.join(out, "ckpt", "model.safetensors")
    fj.save(path, m)
    jax.experimental.multihost_utils.sync_global_devices("saved")
    fresh = fj.load(path, model())
    results["loaded"] = [np.asarray(p.data).ravel().tolist() for p in fj.params(fresh)]
    json.dump(results, open(os.path.join(out, f"multi{i}.json"), "w"))
    jax.experimental.multihost_utils.sync_global_devices("done")


if __name__ == "__main__":
    import jax.experimental.multihost_utils  # noqa: F401

    if sys.argv[1] == "single":
        single(sys.argv[2])
    else:
        multi(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
