"""Multi-process epoch loops (round 3): repeated ``train_`` calls, callbacks, evaluation,
``fj.distributed.mean``, in two gloo processes of 2 CPU devices each
(``_distributed_child_loop.py``). The oracle is the same loop in one process on one
device (``devices=None``), run in a third child.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_distributed import TOLERANCE, _env, _free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = os.path.join(ROOT, "tests", "_distributed_child_loop.py")


def spawn(mode, args, out, devices=2, name=None):
    """Start ``_distributed_child_loop.py MODE ARGS...``; its output goes to a log file."""
    log = os.path.join(out, f"{name or mode}.log")
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, CHILD, mode, *map(str, args)],
            env=_env(devices),
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    proc.log = log
    return proc


def finish(procs, timeout=240):
    """Wait for every child (killing all of them past ``timeout`` seconds), then fail
    with the log of the first that did not exit 0."""
    try:
        for p in procs:
            p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for p in procs:
        if p.returncode != 0:
            with open(p.log) as f:
                pytest.fail(f"child exited with {p.returncode}:\n{f.read()[-4000:]}")


def pair(mode, out, *extra):
    """Start processes 0 and 1 of a two-process run of ``mode`` (one free port)."""
    port = _free_port()
    return [spawn(mode, [i, port, out, *extra], out, name=f"{mode}{i}") for i in range(2)]


def read(out, name):
    with open(os.path.join(out, f"{name}.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("loop"))
    procs = [*pair("loop", out), spawn("oracle", [out], out, devices=1)]
    finish(procs)
    return read(out, "oracle"), [read(out, f"loop{i}") for i in range(2)]


def test_three_train_calls_with_callbacks_and_evaluation_equal_one_device(loop):
    oracle, runs = loop
    assert len(oracle["losses"]) == 12 and len(oracle["evals"]) == 3
    assert len(oracle["callbacks"]) == 12  # 4 chunks of 1 step, 4 steps, 4 chunks
    for run in runs:
        for key in ("losses", "callbacks", "evals"):
            np.testing.assert_allclose(run[key], oracle[key], **TOLERANCE)
        for got, want in zip(run["params"], oracle["params"], strict=True):
            np.testing.assert_allclose(got, want, **TOLERANCE)


def test_evaluation_by_plain_call_and_jit_agree(loop):
    for run in (loop[0], *loop[1]):
        for plain, compiled in run["evals"]:
            np.testing.assert_allclose(plain, compiled, rtol=1e-6)


def test_both_processes_end_with_identical_params(loop):
    _, (first, second) = loop
    assert first["params"] == second["params"]
    assert first["evals"] == second["evals"]


def test_mean_averages_over_processes(loop):
    _, runs = loop
    for run in runs:
        assert run["mean"]["float"] == pytest.approx((1.0 + 2.0) / 2)
        np.testing.assert_allclose(run["mean"]["array"], [0.5, 5.0])


def test_mean_in_one_process_returns_its_argument():
    import fluxjax as fj

    x = np.array([1.0, 2.0], np.float32)
    assert fj.distributed.mean(3.5) == 3.5
    np.testing.assert_array_equal(fj.distributed.mean(x), x)
