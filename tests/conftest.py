"""Shared test settings: strict JAX, deterministic randomness, nothing skipped."""

from __future__ import annotations

import os

# The tests run thousands of tiny one-off programs, so XLA's CPU compile time dominates:
# ask for fast compiles rather than fast code (about 3x faster here; results are still
# exact IEEE arithmetic). Must be set before JAX starts its backend; a value already in
# XLA_FLAGS wins.
_FAST_COMPILE = ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0")
_flags = os.environ.get("XLA_FLAGS", "")
for _flag in _FAST_COMPILE:
    if _flag.split("=")[0] not in _flags:
        _flags += " " + _flag
os.environ["XLA_FLAGS"] = _flags.strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Strict JAX: implicit rank promotion is allowed (NumPy broadcasting is part of the API),
# but silent precision changes are not: fluxjax's default is float32.
jax.config.update("jax_numpy_rank_promotion", "allow")
jax.config.update("jax_enable_x64", False)
jax.config.update("jax_numpy_dtype_promotion", "standard")


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same NumPy global random state."""
    np.random.seed(0)
    yield


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator for test data."""
    return np.random.default_rng(0)


@pytest.fixture
def key():
    """A fixed JAX PRNG key."""
    return jax.random.PRNGKey(0)
