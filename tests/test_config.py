"""fluxjax's CPU dispatch default: applied only when it can be, and never over the user's choice."""

import os
import subprocess
import sys

import pytest

PROBE = "import jax, fluxjax; print(jax.config.values['jax_cpu_enable_async_dispatch'])"


def run(code, **env):
    full = {k: v for k, v in os.environ.items() if k != "JAX_CPU_ENABLE_ASYNC_DISPATCH"}
    full.pop("FLUXJAX_CPU_ASYNC", None)
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_imported_first_turns_async_cpu_dispatch_off():
    assert run(PROBE) == "False"


@pytest.mark.parametrize(
    "env", [{"FLUXJAX_CPU_ASYNC": "1"}, {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "true"}]
)
def test_the_users_choice_wins(env):
    assert run(PROBE, **env) == "True"


def test_leaves_a_started_backend_alone():
    code = "import jax.numpy as jnp; jnp.ones(2) + 1; " + PROBE
    assert run(code) == "True"


@pytest.mark.parametrize(
    "env",
    [{"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, {"JAX_NUM_CPU_DEVICES": "2"}],
)
def test_several_cpu_devices_keep_async_dispatch(env):
    # collectives across CPU devices can deadlock with synchronous dispatch
    assert run(PROBE, **env) == "True"
