"""The JAX internals the tracker relies on are where it expects them (tracker/_compat.py),
and no other fluxjax file reaches into ``jax._src`` (except the CPU dispatch setting)."""

import pathlib

import jax.numpy as jnp
import pytest

import fluxjax as fj
from fluxjax.tracker import _compat

PACKAGE = pathlib.Path(fj.__file__).parent


def test_jax_still_has_the_aval_table():
    assert _compat.AVAL_MAPPINGS is not None, "JAX moved jax._src.core.pytype_aval_mappings"
    assert fj.TrackedArray in _compat.AVAL_MAPPINGS


def test_plain_jax_numpy_names_fluxjax_numpy():
    with pytest.raises(TypeError, match="fluxjax.numpy"):
        jnp.sin(fj.param([1.0, 2.0]))


def test_only_the_compat_modules_use_jax_internals():
    users = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "jax._src" in p.read_text(encoding="utf-8")
    )
    assert users == ["_config.py", "tracker/_compat.py"], users
