"""Multi-process epoch loops (round 3): repeated ``train_`` calls, callbacks, evaluation,
``fj.distributed.mean``, in two gloo processes of 2 CPU devices each
(``_distributed_child_loop.py``). The oracle is the same loop in one process on one
device (``devices=None``), run in a third child.
"""

import json
import os
import shutil
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


@pytest.fixture(scope="module")
def oracle(loop):
    return loop[0]


@pytest.fixture(scope="module")
def loop_runs(loop):
    return loop[0]["loop"], loop[1]


def test_three_train_calls_with_callbacks_and_evaluation_equal_one_device(loop_runs):
    oracle, runs = loop_runs
    assert len(oracle["losses"]) == 12 and len(oracle["evals"]) == 3
    assert len(oracle["callbacks"]) == 12  # 4 chunks of 1 step, 4 steps, 4 chunks
    for run in runs:
        for key in ("losses", "callbacks", "evals"):
            np.testing.assert_allclose(run[key], oracle[key], **TOLERANCE)
        for got, want in zip(run["params"], oracle["params"], strict=True):
            np.testing.assert_allclose(got, want, **TOLERANCE)


def test_evaluation_by_plain_call_and_jit_agree(loop_runs):
    for run in (loop_runs[0], *loop_runs[1]):
        for plain, compiled in run["evals"]:
            np.testing.assert_allclose(plain, compiled, rtol=1e-6)


def test_both_processes_end_with_identical_params(loop_runs):
    _, (first, second) = loop_runs
    assert first["params"] == second["params"]
    assert first["evals"] == second["evals"]


def test_mean_averages_over_processes(loop_runs):
    _, runs = loop_runs
    for run in runs:
        assert run["mean"]["float"] == pytest.approx((1.0 + 2.0) / 2)
        np.testing.assert_allclose(run["mean"]["array"], [0.5, 5.0])


def test_split_params_hold_a_quarter_per_device_over_two_processes(loop_runs):
    floats = 4 * 3 + 4 + 2 * 4 + 2  # Dense(3, 4), Dense(4, 2)
    # split over 4 devices: W1 by rows (3), b1 (1), W2 by columns (2); b2 (2,) cannot split
    split = 3 + 1 + 2 + 2
    for run in loop_runs[1]:  # params, Adam's two moments, and its int32 step count
        assert run["bytes"]["replicated"] == [3 * 4 * floats + 4] * 2
        assert run["bytes"]["split"] == [3 * 4 * split + 4] * 2


def test_mean_in_one_process_returns_its_argument():
    import fluxjax as fj

    x = np.array([1.0, 2.0], np.float32)
    assert fj.distributed.mean(3.5) == 3.5
    np.testing.assert_array_equal(fj.distributed.mean(x), x)


def test_killed_pair_resumes_from_its_orbax_checkpoint_as_if_never_stopped(oracle, tmp_path):
    """Killed after step 5, the pair resumes from step 4's orbax checkpoint; so does one
    process on one device given a copy of it. Both equal the uninterrupted run."""
    out = str(tmp_path)
    finish_killed(pair("resume", out, 5))  # both SIGKILL themselves after step 5
    assert sorted(os.listdir(os.path.join(out, "ckpt"))) == [
        "step-000000002.orbax",
        "step-000000004.orbax",
    ]
    shutil.copytree(os.path.join(out, "ckpt"), os.path.join(out, "ckpt_one"))
    finish([*pair("resume", out, 0), spawn("resume_one", [out], out, devices=1)])
    want = oracle["resume"]
    for name in ("resume0", "resume1", "resume_one"):  # the pair; one process, one device
        got = read(out, name)
        assert got["steps_here"] == 12 - 4  # resumed after step 4
        assert len(want["metrics"]) == 3  # the validation loss after each epoch
        np.testing.assert_allclose(got["metrics"], want["metrics"][1:], **TOLERANCE)
        np.testing.assert_allclose(got["losses"], want["losses"], **TOLERANCE)
        for a, b in zip(got["params"], want["params"], strict=True):
            np.testing.assert_allclose(a, b, **TOLERANCE)
        assert got["opt"].keys() == want["opt"].keys()
        for name in want["opt"]:
            np.testing.assert_allclose(got["opt"][name], want["opt"][name], **TOLERANCE)
    newest = os.path.join(out, "ckpt", "step-000000012.orbax")
    # each process wrote its own shards of the split params and Adam moments
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= set(os.listdir(newest + "/arrays"))
    _read_back_on_one_device(newest, want)


def _read_back_on_one_device(path, want):
    """The two processes' checkpoint, read by this process (1 device) into NumPy."""
    import fluxjax as fj
    from fluxjax.train import _orbax

    names = ["0.W", "0.b", "1.W", "1.b"]  # paths in the model
    shapes = [(4, 3), (4,), (2, 4), (2,)]
    like = {"leaf": {n: np.zeros(s, np.float32) for n, s in zip(names, shapes)}}
    like["opt"] = {"0.0.count": np.zeros((), np.int32)}
    like["opt"] |= {
        f"0.0.{k}.{j}": np.zeros(s, np.float32) for k in ("mu", "nu") for j, s in enumerate(shapes)
    }
    like["losses"] = np.zeros(12, np.float32)
    tree, meta = _orbax.load_sharded(path, like)
    assert meta["step"] == 12 and meta["done"]
    for name, w in zip(names, want["params"], strict=True):
        np.testing.assert_allclose(tree["leaf"][name].ravel(), w, **TOLERANCE)
    assert int(tree["opt"]["0.0.count"]) == 12
    assert fj.distributed.process_count() == 1


def finish_killed(procs, timeout=240):
    """Wait for children that kill themselves: each must end by SIGKILL."""
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for p in procs:
        if p.returncode >= 0:
            with open(p.log) as f:
                pytest.fail(f"child exited with {p.returncode}:\n{f.read()[-4000:]}")
