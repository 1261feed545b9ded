"""Child processes of ``test_distributed_loop.py``: a two-process gloo run (2 CPU devices
each) of an epoch loop. ``python tests/_distributed_child_loop.py MODE I PORT OUT [...]``
runs process I of mode MODE and writes ``OUT/MODE{I}.json``; ``python ... oracle OUT``
runs the same loop on one device in one process.

The model, data and loop are tiny on purpose: the point is which calls work and what
they give, on a machine shared by many test runs.
"""

import json
import os
import signal
import sys
import time

import numpy as np

import fluxjax as fj
from fluxjax.train import _opt_arrays, _sharding
from fluxjax.train._steps import Compiled

BATCH = 8


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 3)).astype(np.float32), rng.normal(size=(32, 2)).astype(np.float32)


def model():
    fj.seed(0)
    return fj.Chain(fj.Dense(3, 4, fj.relu), fj.Dense(4, 2))


def flat(m):
    return [np.asarray(p.data).ravel().tolist() for p in fj.params(m)]


def epoch_loop(devices, shard):
    """Three ``train_`` calls on one model and optimiser (a shuffled DataLoader, a list of
    batches, the DataLoader again), each with a callback, each followed by an evaluation
    by a plain call and by ``fj.jit``."""
    X, Y = data()
    m, opt, seen, evals = model(), fj.ADAM(0.01), [], []
    loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
    cb = lambda: seen.append(float(np.asarray(m.layers[0].W.data).sum()))  # noqa: E731
    evaluate = fj.jit(lambda x, y: fj.mse(m(x), y))
    loader = fj.DataLoader((X, Y), BATCH, shuffle=True, key=1, shard=shard)
    listed = [(X[i : i + BATCH], Y[i : i + BATCH]) for i in range(0, 32, BATCH)]
    losses = []
    for d in (loader, listed, loader):
        losses += np.asarray(fj.train_(loss, m, d, opt, cb=cb, devices=devices)).tolist()
        evals.append([float(fj.mse(m(X), Y)), float(evaluate(X, Y))])
    return {"losses": losses, "callbacks": seen, "evals": evals, "params": flat(m)}


def resumable(devices, shard, folder=None, kill_at=0):
    """Three epochs of Adam over a shuffled DataLoader (params split over the devices),
    checkpointed every 2 steps into ``folder``; SIGKILL after step ``kill_at`` (0: never).
    At each epoch end each process evaluates its half of a validation set and
    ``fj.distributed.mean`` averages the halves (the docs' epoch loop)."""
    X, Y = data()
    Xv, Yv = X[:16] + 0.5, Y[:16]
    m, opt, steps, metrics = model(), fj.ADAM(0.01), [0], []
    loader = fj.DataLoader((X, Y), BATCH, shuffle=True, key=1, shard=shard)
    n, i = fj.distributed.process_count(), fj.distributed.process_index()
    mine = slice(i * 16 // n, (i + 1) * 16 // n)

    def cb():
        steps[0] += 1
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if loader.position.batch == 0:  # an epoch just ended
            metrics.append(fj.distributed.mean(float(fj.mse(m(Xv[mine]), Yv[mine]))))

    kw = {"checkpoint": folder, "checkpoint_every": 2} if folder else {}
    if devices is not None:
        kw.update(devices=devices, shard_params=True)
    losses = fj.train_(lambda x, y: fj.mse(m(x), y), m, loader, opt, cb=cb, epochs=3, **kw)
    state = _opt_arrays.named_state(opt, list(fj.params(m)))
    return {
        "losses": np.asarray(losses).tolist(),
        "params": flat(m),
        "opt": {k: np.asarray(v).ravel().tolist() for k, v in state.items()},
        "steps_here": steps[0],
        "metrics": metrics,
    }


def resume(i, port, out, kill_at):
    fj.distributed.initialize(f"127.0.0.1:{port}", 2, i)
    result = resumable("all", True, os.path.join(out, "ckpt"), int(kill_at))
    json.dump(result, open(os.path.join(out, f"resume{i}.json"), "w"))


def resume_one(out):
    """Resume the two processes' checkpoint (copied to ``OUT/ckpt_one``) in one process
    on one device."""
    result = resumable(None, False, os.path.join(out, "ckpt_one"))
    json.dump(result, open(os.path.join(out, "resume_one.json"), "w"))


def oracle(out):
    results = {"loop": epoch_loop(None, False), "resume": resumable(None, False)}
    json.dump(results, open(os.path.join(out, "oracle.json"), "w"))


def held_bytes(shard_params):
    """Bytes each of this process's devices holds for the params and Adam state that
    ``train_`` carries over the 4 devices of the two processes."""
    m, (X, Y) = model(), data()
    lay = _sharding.layout("all", shard_params)
    runner = Compiled(lambda x, y: fj.mse(m(x), y), list(fj.params(m)), fj.ADAM(0.01), lay)
    runner.step((X[:BATCH], Y[:BATCH]))
    return sorted(_sharding.device_bytes((runner.arrays, runner.state)).values())


def loop(i, port, out):
    fj.distributed.initialize(f"127.0.0.1:{port}", 2, i)
    result = epoch_loop("all", True)
    result["bytes"] = {"replicated": held_bytes(False), "split": held_bytes(True)}
    mine = np.array([i, 10.0 * i], np.float32)
    result["mean"] = {
        "float": fj.distributed.mean(float(i + 1)),
        "array": np.asarray(fj.distributed.mean(mine)).tolist(),
    }
    json.dump(result, open(os.path.join(out, f"loop{i}.json"), "w"))


def survive(i, port, out, doing):
    """Train a round, say so in a file, then either train round after round (``doing ==
    "training"``: a dead peer breaks a collective) or work on the host (``"host"``: only
    the missing heartbeats tell), until killed."""
    fj.distributed.initialize(f"127.0.0.1:{port}", 2, i)  # fluxjax's default heartbeat
    X, Y = data()
    m, opt = model(), fj.ADAM(0.01)
    listed = [(X[:BATCH], Y[:BATCH])] * 4
    while True:
        fj.train_(lambda x, y: fj.mse(m(x), y), m, listed, opt, devices="all")
        open(os.path.join(out, f"ready{i}"), "w").close()
        while doing == "host":
            time.sleep(0.05)


def error(i, port, out):
    """Process 1 raises after a round of training; process 0 trains on, waiting for it."""
    fj.distributed.initialize(f"127.0.0.1:{port}", 2, i)
    X, Y = data()
    m, opt = model(), fj.ADAM(0.01)
    listed = [(X[:BATCH], Y[:BATCH])] * 4
    while True:
        fj.train_(lambda x, y: fj.mse(m(x), y), m, listed, opt, devices="all")
        if i == 1:
            raise RuntimeError("a bug in process 1")


def counts(i, port, out):
    """Process 1 says there are 3 processes; the coordinator (process 0) runs 2."""
    fj.distributed.initialize(f"127.0.0.1:{port}", 2 if i == 0 else 3, i)
    json.dump(epoch_loop("all", True), open(os.path.join(out, f"counts{i}.json"), "w"))


def twice(out):
    """A one-process runtime; a second initialize must say it was already called."""
    fj.distributed.initialize(f"127.0.0.1:{_free_port()}", 1, 0)
    try:
        fj.distributed.initialize(f"127.0.0.1:{_free_port()}", 1, 0)
        message = None
    except RuntimeError as e:
        message = str(e)
    json.dump({"message": message}, open(os.path.join(out, "twice.json"), "w"))


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    started = time.monotonic()
    mode, *args = sys.argv[1:]
    if mode in ("oracle", "twice", "resume_one"):
        globals()[mode](args[0])
    else:
        globals()[mode](int(args[0]), int(args[1]), args[2], *args[3:])
    print(f"{mode} done in {time.monotonic() - started:.1f} s", flush=True)
