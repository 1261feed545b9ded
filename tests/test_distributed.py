"""Data parallel ``train_(..., devices=...)`` and multi-process runs, in child processes.

Device count and ``jax.distributed`` are fixed per process, so the training runs happen
in ``_distributed_child.py``: one child with 4 CPU devices, and two gloo processes with
2 CPU devices each. The oracle is the one-device run of the same model, data and
optimiser (``devices=None``), made in the 4-device child.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

import fluxjax as fj

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = os.path.join(ROOT, "tests", "_distributed_child.py")
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def _env(devices):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _wait(procs, logs, timeout=240):
    """Wait for every child; if one fails or time runs out, stop the others."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs):
        failed = any(p.returncode not in (None, 0) for p in procs)
        if failed or time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            break
        time.sleep(0.1)
    for p, log in zip(procs, logs):
        if p.returncode != 0:
            with open(log) as f:
                pytest.fail(f"child exited with {p.returncode}:\n{f.read()[-4000:]}")


def _spawn(args, devices, out, name):
    log = os.path.join(out, f"{name}.log")
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, CHILD, *args], env=_env(devices), stdout=f, stderr=f
        )
    return proc, log


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("single"))
    proc, log = _spawn(["single", out], 4, out, "single")
    _wait([proc], [log])
    with open(os.path.join(out, "single.json")) as f:
        return json.load(f)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("multi"))
    os.makedirs(os.path.join(out, "ckpt"))
    port = str(_free_port())
    spawned = [_spawn(["multi", str(i), port, out], 2, out, f"multi{i}") for i in range(2)]
    _wait([p for p, _ in spawned], [log for _, log in spawned])
    results = []
    for i in range(2):
        with open(os.path.join(out, f"multi{i}.json")) as f:
            results.append(json.load(f))
    return out, results


def _assert_same_run(run, oracle):
    np.testing.assert_allclose(run["losses"], oracle["losses"], **TOLERANCE)
    for got, want in zip(run["params"], oracle["params"], strict=True):
        np.testing.assert_allclose(got, want, **TOLERANCE)


@pytest.mark.parametrize("kind", ["step", "seq", "shuf"])
def test_all_devices_equal_one_device(single, kind):
    assert single["devices"] == 4
    _assert_same_run(single["runs"][f"{kind}_all"], single["runs"][f"{kind}_one"])


@pytest.mark.parametrize("kind", ["step", "seq", "shuf"])
def test_each_device_gets_a_quarter_of_every_batch(single, kind):
    seen = single["seen"][kind]
    assert seen[0] == [2, 3]  # the loss's x: 8 rows over 4 devices, per step and in the scan
    assert seen[-1] == [8, 3]  # the next train_ call, on one device


def test_params_are_single_device_params_after_train(single):
    for name, run in single["runs"].items():
        assert run["single_device_after"], name


def test_batch_that_does_not_divide_raises_naming_both(single):
    found = single["divisibility"]
    assert found["message"] is not None
    assert "batch of 6" in found["message"] and "4 devices" in found["message"]
    assert found["unchanged"]


def test_callbacks_and_nonfinite_steps_behave_as_on_one_device(single):
    one, every = single["guarded"]["one"], single["guarded"]["all"]
    assert len(every["callbacks"]) == len(one["callbacks"]) > 4
    np.testing.assert_allclose(every["callbacks"], one["callbacks"], **TOLERANCE)
    assert one["message"] is not None and "step 2" in one["message"]
    assert every["message"] == one["message"]
    for got, want in zip(every["params"], one["params"], strict=True):
        np.testing.assert_allclose(got, want, **TOLERANCE)


def test_sharded_loader_batches_must_divide_and_match_the_devices(single):
    uneven, mismatch = single["sharded_loader_errors"]
    assert "batch of 6" in uneven and "4 devices" in uneven
    assert "all 4 devices" in mismatch and 'devices="all"' in mismatch


@pytest.mark.parametrize("kind", ["step", "seq", "shuf"])
def test_sharded_params_give_the_same_result(single, kind):
    _assert_same_run(single["runs"][f"{kind}_fsdp"], single["runs"][f"{kind}_one"])


def test_sharded_params_hold_fewer_bytes_per_device(single):
    shapes = [(8, 3), (8,), (2, 8), (2,)]  # Dense(3, 8), Dense(8, 2)
    floats = sum(int(np.prod(s)) for s in shapes)
    # params, Adam's two moments, and its int32 step count on every device
    assert single["bytes"]["replicated"] == {"max": 3 * 4 * floats + 4, "devices": 4}
    # W1 split over rows (6 floats each), b1 (2), W2 over columns (4); b2 (2,) cannot split
    assert single["bytes"]["fsdp"] == {"max": 3 * 4 * (6 + 2 + 4 + 2) + 4, "devices": 4}


def test_two_processes_equal_one_device(single, multi):
    _, results = multi
    for result in results:
        assert (result["devices"], result["local"]) == (4, 2)
        for kind in ("step", "seq", "shuf"):
            _assert_same_run(result["runs"][kind], single["runs"][f"{kind}_one"])
        _assert_same_run(result["runs"]["listed"], single["runs"]["listed_one"])
        _assert_same_run(result["runs"]["step_fsdp"], single["runs"]["step_one"])


def test_two_processes_end_with_identical_params(multi):
    _, (first, second) = multi
    for kind in first["runs"]:
        assert first["runs"][kind]["params"] == second["runs"][kind]["params"]


def test_two_processes_write_one_checkpoint_that_both_load(multi):
    out, results = multi
    assert os.listdir(os.path.join(out, "ckpt")) == ["model.safetensors"]
    final = results[0]["runs"]["listed"]["params"]
    for result in results:
        assert result["loaded"] == final
    m = fj.Chain(fj.Dense(3, 8, fj.relu), fj.Dense(8, 2))
    fj.load(os.path.join(out, "ckpt", "model.safetensors"), m)
    for p, want in zip(fj.params(m), final, strict=True):
        np.testing.assert_array_equal(np.asarray(p.data).ravel(), np.float32(want))


def test_bad_devices_are_rejected_before_training():
    W = fj.param(np.zeros((1, 2), np.float32))
    data = [(np.ones((4, 2), np.float32), np.ones((4, 1), np.float32))]
    loss = lambda x, y: fj.mse(x @ W.T, y)  # noqa: E731
    for kw, words in [
        ({"devices": 99}, "devices=99"),
        ({"devices": "gpus"}, "devices must be"),
        ({"devices": []}, "non-empty list"),
        ({"shard_params": True}, "needs devices="),
        ({"devices": "all", "jit": False}, "needs jit=True"),
    ]:
        with pytest.raises(ValueError, match=words):
            fj.train_(loss, fj.Params([W]), data, fj.Descent(0.1), **kw)
        np.testing.assert_array_equal(np.asarray(W.data), np.zeros((1, 2)))


def test_sharded_loader_needs_a_key_to_shuffle():
    X = np.zeros((8, 2), np.float32)
    with pytest.raises(ValueError, match="needs key="):
        fj.DataLoader(X, 4, shuffle=True, shard=True)
    assert [b.shape for b in fj.DataLoader(X, 4, shard=True)] == [(4, 2), (4, 2)]


def test_cpu_devices_made_after_import_train_like_one_device():
    # fluxjax chose synchronous CPU dispatch at import; the devices come later. Many small
    # steps over 4 CPU devices (XLA's in-process all-reduce) must neither hang nor differ.
    code = textwrap.dedent("""
        import jax, fluxjax as fj, numpy as np
        jax.config.update("jax_num_cpu_devices", 4)
        x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
        runs = []
        for devices in (None, "all"):
            W = fj.param(np.zeros((1, 2), np.float32))
            loss = lambda x: fj.mse(x @ W.T, x[:, :1])
            runs.append(fj.train_(loss, fj.Params([W]), [x] * 500, fj.ADAM(0.01), devices=devices))
        print(len(jax.devices()), np.allclose(*runs, rtol=1e-5, atol=1e-6))
    """)
    env = _env(1)
    env.pop("XLA_FLAGS")
    for name in ("JAX_CPU_ENABLE_ASYNC_DISPATCH", "FLUXJAX_CPU_ASYNC", "JAX_NUM_CPU_DEVICES"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["4", "True"]


def test_initialize_after_jax_started_says_to_call_it_first():
    np.asarray(fj.param([1.0]).data)  # JAX's backend is running in this process
    collectives = jax.config.jax_cpu_collectives_implementation
    with pytest.raises(RuntimeError, match="call it at the top of the script"):
        fj.distributed.initialize("127.0.0.1:1", 2, 0)
    assert jax.config.jax_cpu_collectives_implementation == collectives  # nothing changed
    assert fj.distributed.process_count() == 1 and fj.distributed.process_index() == 0


def test_initialize_that_fails_changes_no_setting():
    code = textwrap.dedent("""
        import jax, fluxjax as fj
        names = ("jax_cpu_collectives_implementation", "jax_cpu_enable_async_dispatch")
        before = [jax.config.values[n] for n in names]
        try:  # JAX refuses the process id before connecting anywhere
            fj.distributed.initialize("127.0.0.1:1", 2, 5, cpu_collectives="mpi")
        except ValueError as e:
            print("refused:", "process_id" in str(e))
        after = [jax.config.values[n] for n in names]
        print(after == before, jax.distributed.is_initialized())
    """)
    env = _env(1)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["refused:", "True", "True", "False"]
