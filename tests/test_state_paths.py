"""State has one owner, the "done when" test: every stateful layer (BatchNorm,
InstanceNorm, GroupNorm, Dropout, AlphaDropout, RNN, LSTM, GRU) trained for three steps
along every path (eager ``back_``, ``gradient``, ``train_`` compiled step / scan / eager /
explicit, ``fluxjax.jit``, ``devices=2``) gives the same losses, params and state, from a
fresh model and after ``reset_``. The eager ``back_`` loop is the reference."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from _state_paths import LAYERS, scenario
from _tol import assert_close

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ["gradient", "step", "scan", "train_eager", "explicit", "jit"]
_REFERENCE: dict = {}


def reference(name):
    if name not in _REFERENCE:
        _REFERENCE[name] = scenario(name, "eager")
    return _REFERENCE[name]


def assert_same(got, want, what):
    for key in want:
        a, b = got[key], want[key]
        if isinstance(b, list):
            assert len(a) == len(b), f"{what} {key}"
            for i, (u, v) in enumerate(zip(a, b)):
                assert_close(u, v, rtol=2e-5, atol=2e-6, err_msg=f"{what} {key}[{i}]")
        else:
            assert_close(a, b, rtol=2e-5, atol=2e-6, err_msg=f"{what} {key}")


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("path", PATHS)
def test_every_path_gives_the_same_losses_params_and_state(name, path):
    assert_same(scenario(name, path), reference(name), f"{name} along {path}:")


def test_devices_2_gives_the_same_as_one_device(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, "--xla_force_host_platform_device_count=2"])
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "tests")])
    out = tmp_path / "devices.npz"
    child = os.path.join(ROOT, "tests", "_state_paths_child.py")
    done = subprocess.run(
        [sys.executable, child, str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    saved = np.load(out)
    for name in LAYERS:
        want = reference(name)
        got = {
            key: [saved[f"{name}/{key}/{i}"] for i in range(len(v))]
            if isinstance(v, list)
            else saved[f"{name}/{key}/0"]
            for key, v in want.items()
        }
        assert_same(got, want, f"{name} on devices=2:")
