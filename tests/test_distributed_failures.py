"""Failures in a multi-process run end it promptly and say why (round 3), in child
processes (``_distributed_child_loop.py``): a killed peer, a second ``initialize``,
process counts that disagree. The bounds below are correctness bounds (the default
heartbeat timeout is 10 s; JAX's own 100 s default would exceed them), not speed
measurements.
"""

import json
import os
import subprocess
import time

import pytest
from test_distributed_loop import pair, spawn

NOTICED_WITHIN = 30  # seconds from a peer's SIGKILL to the survivor's exit


def _wait_for_files(paths, procs, timeout=180):
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(p) for p in paths):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
                p.wait()
            logs = "\n".join(open(p.log).read()[-2000:] for p in procs)
            pytest.fail(f"the children never got going:\n{logs}")
        time.sleep(0.1)


@pytest.mark.parametrize("doing", ["host", "training"])
def test_killed_peer_makes_the_survivor_exit_nonzero_within_30_s(tmp_path, doing):
    out = str(tmp_path)
    survivor, victim = procs = pair("survive", out, doing)
    _wait_for_files([os.path.join(out, f"ready{i}") for i in range(2)], procs)
    victim.kill()
    killed = time.monotonic()
    try:
        survivor.wait(timeout=2 * NOTICED_WITHIN)
    except subprocess.TimeoutExpired:
        survivor.kill()
        survivor.wait()
        pytest.fail(f"the survivor still ran {2 * NOTICED_WITHIN} s after its peer died")
    took = time.monotonic() - killed
    victim.wait()
    assert survivor.returncode != 0
    assert took < NOTICED_WITHIN, f"the survivor exited {took:.1f} s after its peer died"


def test_an_error_in_one_process_ends_the_run_promptly(tmp_path):
    out = str(tmp_path)
    survivor, failing = procs = pair("error", out)
    try:  # without exit_on_error it would wait 300 s at JAX's shutdown barrier
        failing.wait(timeout=2 * NOTICED_WITHIN + 30)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.wait()
        pytest.fail("the process that raised did not exit")
    failed = time.monotonic()
    try:
        survivor.wait(timeout=2 * NOTICED_WITHIN)
    except subprocess.TimeoutExpired:
        survivor.kill()
        survivor.wait()
        pytest.fail(f"the survivor still ran {2 * NOTICED_WITHIN} s after its peer failed")
    took = time.monotonic() - failed
    with open(failing.log) as f:
        assert "RuntimeError: a bug in process 1" in f.read()  # the traceback is printed
    assert failing.returncode == 1 and survivor.returncode != 0
    assert took < NOTICED_WITHIN, f"the survivor exited {took:.1f} s after its peer failed"


def test_process_counts_that_disagree_fail_both_processes(tmp_path):
    out = str(tmp_path)
    procs = pair("counts", out)
    for p in procs:
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
                q.wait()
            pytest.fail("a process with a wrong num_processes kept running")
    logs = [open(p.log).read() for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode != 0, log[-3000:]
        assert "every process must pass the same count" in log, log[-3000:]
    assert "process 1 was started with num_processes=3, but process 0" in logs[1]
    assert "process 0 was started with num_processes=2, but process 1" in logs[0]
    assert not any(os.path.exists(os.path.join(out, f"counts{i}.json")) for i in range(2))


def test_second_initialize_says_it_was_already_called(tmp_path):
    out = str(tmp_path)
    p = spawn("twice", [out], out, devices=1)
    p.wait(timeout=120)
    assert p.returncode == 0, open(p.log).read()[-3000:]
    with open(os.path.join(out, "twice.json")) as f:
        message = json.load(f)["message"]
    assert "already running in this process (process 0 of 1)" in message
    assert "initialize (or jax.distributed.initialize) was already called" in message
