"""Two processes × 2 CPU devices (gloo): bytes per device, checkpoint writes, failure notice.

    python -m benchmarks.processes [--repeats 3]

For the medium MLP (784→1024→1024→10) with Adam, as ``train_(devices="all")`` holds it
over the 4 devices of two processes: the bytes each device holds, replicated and with
``shard_params=True`` (from the arrays' ``addressable_shards``); the time to write one
checkpoint of params and Adam state with orbax, every process writing its own shards
(``train/_orbax.write_named``), against gathering everything and writing one
safetensors file from process 0 (what a one-process ``train_(checkpoint=)`` writes);
and the seconds from a peer's SIGKILL to the survivor's exit with fluxjax's default
heartbeat (10 s), the survivor working on the host (only heartbeats tell) or training
(a collective breaks). Medians over ``--repeats``; CPU devices share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runner(shard_params):
    import fluxjax as fj
    from benchmarks import _fluxjax_contenders as fc
    from benchmarks._peers import SIZES
    from fluxjax.train import _sharding
    from fluxjax.train._steps import Compiled

    m = fc._model(SIZES["medium"])
    lay = _sharding.layout("all", shard_params)
    return Compiled(lambda x: fj.mse(m(x), x), list(fj.params(m)), fj.ADAM(1e-3), lay), lay


def _writes(folder, repeats):
    """Seconds to write the split params and Adam state: orbax from every process, and
    gather + one safetensors file from process 0."""
    import jax
    from jax.experimental import multihost_utils

    from fluxjax.train import _checkpoint_files, _orbax, _sharding

    runner, lay = _runner(True)
    tensors = {f"leaf/{k}": a for k, a in enumerate(runner.arrays)}
    tensors |= {f"opt/{k}": a for k, a in enumerate(jax.tree.leaves(runner.state))}
    times = {"orbax, every process": [], "gather + safetensors, process 0": []}
    for step in range(1, repeats + 1):
        multihost_utils.sync_global_devices(f"orbax {step}")
        t = time.perf_counter()
        _orbax.write_named(os.path.join(folder, "orbax"), step, tensors, {"step": step})
        times["orbax, every process"].append(time.perf_counter() - t)
        multihost_utils.sync_global_devices(f"safetensors {step}")
        t = time.perf_counter()
        local = {k: jax.device_get(a) for k, a in _sharding.gather(lay, tensors).items()}
        if jax.process_index() == 0:
            _checkpoint_files.write(os.path.join(folder, "st"), step, local, {"step": step})
        multihost_utils.sync_global_devices(f"written {step}")
        times["gather + safetensors, process 0"].append(time.perf_counter() - t)
    return times


def _child(rank, port, folder, repeats):
    import fluxjax as fj
    from fluxjax.train import _sharding

    fj.distributed.initialize(f"127.0.0.1:{port}", 2, rank)
    held = {}
    for name, split in (("replicated", False), ("shard_params=True", True)):
        runner, _ = _runner(split)
        held[name] = max(_sharding.device_bytes((runner.arrays, runner.state)).values())
    os.makedirs(os.path.join(folder, "st"), exist_ok=True)
    return {"bytes": held, "seconds": _writes(folder, repeats)}


def _survivor(rank, port, ready, doing):
    """Train a round, touch ``ready``, then train or work on the host until killed."""
    import numpy as np

    import fluxjax as fj

    fj.distributed.initialize(f"127.0.0.1:{port}", 2, rank)
    m, x = fj.Dense(3, 2), np.ones((8, 3), np.float32)
    while True:
        fj.train_(lambda x: fj.mse(m(x), x[:, :2]), m, [x] * 4, fj.ADAM(), devices="all")
        open(f"{ready}{rank}", "w").close()
        while doing == "host":
            time.sleep(0.05)


def _notice(doing) -> float:
    """Seconds from SIGKILL of process 1 to process 0's (non-zero) exit."""
    ready, port = os.path.join(tempfile.mkdtemp(), "ready"), str(_port())
    me = [sys.executable, "-m", "benchmarks.processes", "--survivor", doing, ready, port]
    procs = [
        subprocess.Popen([*me, str(r)], env=_env(), cwd=ROOT, stderr=subprocess.DEVNULL)
        for r in range(2)
    ]
    while not all(os.path.exists(f"{ready}{r}") for r in range(2)):
        time.sleep(0.05)
    procs[1].kill()
    t = time.monotonic()
    procs[0].wait(timeout=300)
    took = time.monotonic() - t
    procs[1].wait()
    assert procs[0].returncode != 0
    return took


def _figures(repeats):
    folder, port = tempfile.mkdtemp(), str(_port())
    me = [sys.executable, "-m", "benchmarks.processes", "--child", folder, port, str(repeats)]
    procs = [
        subprocess.Popen([*me, str(r)], env=_env(), cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for r in range(2)
    ]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a child failed")
    return [json.loads(o.strip().splitlines()[-1]) for o in outs]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--survivor", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder, port, repeats, rank = args.child
        print(json.dumps(_child(int(rank), port, folder, int(repeats))))
        return 0
    if args.survivor:
        doing, ready, port, rank = args.survivor
        _survivor(int(rank), port, ready, doing)
        return 0
    import statistics

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    results = _figures(args.repeats)
    notice = {d: [_notice(d) for _ in range(args.repeats)] for d in ("host", "training")}
    print(f"{started}, {os.cpu_count()} CPU cores, {args.repeats} repeats; 1-minute load")
    print(f"average {load:.2f} before, {os.getloadavg()[0]:.2f} after.\n")
    print("| process | MB/device replicated | MB/device shard_params=True |", end=" ")
    print(" | ".join(f"{k}, s" for k in results[0]["seconds"]) + " |")
    print("|---:|---:|---:|" + "---:|" * len(results[0]["seconds"]))
    for rank, r in enumerate(results):
        mb = [f"{r['bytes'][k] / 1e6:.2f}" for k in ("replicated", "shard_params=True")]
        secs = [f"{statistics.median(v):.3f}" for v in r["seconds"].values()]
        print(f"| {rank} | " + " | ".join(mb + secs) + " |")
    for doing, took in notice.items():
        print(f"\nSIGKILL of process 1 → process 0 exits, survivor {doing}: ", end="")
        print(", ".join(f"{t:.1f}" for t in took) + " s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
