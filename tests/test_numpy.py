"""fluxjax.numpy: every lifted jax.numpy function, plain and tracked, against jax.numpy.

For each name in ``LIFTED`` / ``LINALG_LIFTED`` the first argument pattern (from a small
table) on which plain ``jax.numpy`` runs and returns finite floats is used to check that

(a) with plain inputs, ``fluxjax.numpy.<name>`` returns exactly what ``jax.numpy`` does;
(b) with ``param`` inputs, ``back_`` of a fixed random weighting of the output gives the
    ``.grad`` that ``jax.grad`` gives for the same pure function.

Names that cannot be checked that way are listed in ``EXCLUDED`` with a reason, and a test
asserts that every lifted name is either checked or excluded, so a new JAX function is
noticed.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

import fluxjax as fj
import fluxjax.numpy as fnp


class Arg:
    """A float array argument: plain in check (a), a ``param`` in check (b)."""

    def __init__(self, name, value):
        self.name, self.value = name, np.asarray(value, np.float32)

    def __repr__(self):
        return f"{self.name}{self.value.shape}"


_rng = np.random.default_rng(20240607)


def _u(*shape, lo=0.2, hi=0.8):
    return _rng.uniform(lo, hi, shape)


_m = _u(4, 4)
A, B = Arg("A", _u(3, 4)), Arg("B", _u(3, 4))
A1 = Arg("A1", _u(3, 4, lo=1.2, hi=1.8))  # for functions defined only above 1 (arccosh)
V, W = Arg("V", _u(4)), Arg("W", _u(4))
S = Arg("S", _m @ _m.T + 4 * np.eye(4))  # symmetric positive definite
G = Arg("G", _u(4, 4) + 3 * np.eye(4))  # general, well conditioned
Bt = Arg("Bt", _u(4, 3))
C, c = Arg("C", _u(3, 3)), Arg("c", _u(3))
T = Arg("T", _u(2, 3, 4))
s = Arg("s", 0.5)
XP = Arg("xp", [0.0, 0.25, 0.5, 0.75, 1.0])  # increasing sample points for interp
v2, v31 = Arg("v2", _u(2)), Arg("v31", _u(3, 1))

MASK = _u(3, 4) > 0.5  # plain (non-float) arguments stay constants
MASK[0, 0], MASK[0, 1] = True, False
IDX = np.array([0, 2])
I31 = np.array([[1], [3], [0]])
K01 = (np.arange(12).reshape(3, 4) % 2).astype(np.int32)

# Tried in order; the first one on which plain jax.numpy returns finite floats is used.
GENERIC = [
    ((A,), {}),
    ((A, V), {}),
    ((A, B), {}),
    ((V,), {}),
    ((V, W), {}),
    (([A, B],), {}),
    ((A, 1), {}),
    ((A, 2), {}),
    ((A, 0, 1), {}),
    ((A, (4, 3)), {}),
    ((A, (1, 0)), {}),
    ((A, IDX), {}),
    ((A1,), {}),
    ((S,), {}),
    ((S, V), {}),
    ((G, S), {}),
    ((S, 3), {}),
    ((C, c), {}),
    ((c, A), {}),
    ((T, 2), {}),
    ((V, W, 2), {}),
    ((MASK, A, B), {}),
]

# Functions that need a specific call; only this pattern is tried for them.
SPECIAL = {
    "astype": ((A, jnp.float32), {}),
    "block": (([[A, B]],), {}),
    "broadcast_to": ((V, (3, 4)), {}),
    # mode="raise" (the default) needs every input concrete, so it never runs under jit
    "choose": ((K01, [A, B]), {"mode": "clip"}),
    "clip": ((A, 0.3, 0.6), {}),
    "cumulative_prod": ((A,), {"axis": 1}),
    "cumulative_sum": ((A,), {"axis": 1}),
    "einsum": (("ij,j->i", A, V), {}),
    "fill_diagonal": ((S, s), {"inplace": False}),
    "full": (((3, 4), s), {}),
    "insert": ((A, 1, V), {"axis": None}),
    "interp": ((A, XP, Arg("fp", _u(5))), {}),
    "place": ((A, MASK, V), {"inplace": False}),
    "put": ((A, np.array([0, 5]), v2), {"inplace": False}),
    "put_along_axis": ((A, I31, v31), {"axis": 1, "inplace": False}),
    "roots": ((V,), {"strip_zeros": False}),
    "select": (([MASK], [A]), {}),
    "take_along_axis": ((A, I31), {"axis": 1}),
    "where": ((MASK, A, B), {}),
    "linalg.multi_dot": (([A, Bt, C],), {}),
    "linalg.svd": ((S,), {"full_matrices": False}),
    "linalg.tensorinv": ((S,), {"ind": 1}),
    "linalg.tensorsolve": ((G, V), {}),
}

INT, INTONLY, BOOL, CALLABLE, CREATE, UTIL, NODIFF, DYNAMIC = (
    "integer output",
    "integer inputs only: a float param is rejected, as jax.numpy rejects floats",
    "boolean output",
    "needs a callable",
    "creates an array from sizes: no array input to differentiate",
    "not an array function (dtypes, shapes, printing, I/O)",
    "JAX cannot differentiate it (no rule, or only under unchecked assumptions)",
    "value-dependent output shape: cannot be recorded in a compiled graph",
)

# Every lifted name that is not checked by (a) and (b), with the reason.
EXCLUDED = {
    **dict.fromkeys(
        "argmax argmin argpartition argsort count_nonzero digitize lexsort nanargmax "
        "nanargmin searchsorted linalg.matrix_rank".split(),
        INT,
    ),
    **dict.fromkeys(
        "bincount bitwise_and bitwise_count bitwise_invert bitwise_left_shift bitwise_not "
        "bitwise_or bitwise_right_shift bitwise_xor gcd invert lcm left_shift packbits "
        "ravel_multi_index right_shift unpackbits unravel_index".split(),
        INTONLY,
    ),
    **dict.fromkeys(
        "all allclose any array_equal array_equiv equal greater greater_equal isclose "
        "iscomplex isfinite isin isinf isnan isneginf isposinf isreal less less_equal "
        "logical_and logical_not logical_or logical_xor not_equal signbit".split(),
        BOOL,
    ),
    **dict.fromkeys(
        "apply_along_axis apply_over_axes fromfunction frompyfunc mask_indices piecewise "
        "vectorize".split(),
        CALLABLE,
    ),
    **dict.fromkeys(
        "arange bartlett blackman diag_indices empty eye hamming hanning identity indices "
        "kaiser ones tri tril_indices triu_indices zeros".split(),
        CREATE,
    ),
    **dict.fromkeys(
        "array_repr array_str broadcast_shapes can_cast diag_indices_from einsum_path "
        "from_dlpack frombuffer fromfile fromiter fromstring get_printoptions iscomplexobj "
        "isdtype isrealobj isscalar issubdtype iterable ix_ load ndim printoptions "
        "promote_types result_type save savez set_printoptions shape size tril_indices_from "
        "triu_indices_from".split(),
        UTIL,
    ),
    **dict.fromkeys("nextafter spacing linalg.eig".split(), NODIFF),
    **dict.fromkeys(
        "argwhere compress extract flatnonzero intersect1d nonzero place setdiff1d setxor1d "
        "trim_zeros union1d unique unique_all unique_counts unique_inverse "
        "unique_values".split(),
        DYNAMIC,
    ),
}

NAMES = list(fnp.LIFTED) + ["linalg." + n for n in fnp.LINALG_LIFTED]
CHECKED = [n for n in NAMES if n not in EXCLUDED]


# -- helpers ------------------------------------------------------------------------------
def _get(module, name):
    for part in name.split("."):
        module = getattr(module, part)
    return module


def _fill(spec, leaf):
    """Replace every ``Arg`` in a (nested) argument spec by ``leaf(arg)``."""
    if isinstance(spec, Arg):
        return leaf(spec)
    if type(spec) in (list, tuple):
        return type(spec)(_fill(x, leaf) for x in spec)
    if type(spec) is dict:
        return {k: _fill(v, leaf) for k, v in spec.items()}
    return spec


def _args_of(spec):
    found = []
    _fill(spec, found.append)
    return found


def _plain_call(name, module, args, kwargs):
    return _get(module, name)(*_fill(args, lambda a: a.value), **_fill(kwargs, lambda a: a.value))


def _tracked_call(name, args, kwargs):
    tracked = lambda a: fj.param(a.value)  # noqa: E731
    return _get(fnp, name)(*_fill(args, tracked), **_fill(kwargs, tracked))


def _inexact(x):
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


def _usable(out):
    leaves = jax.tree_util.tree_leaves(out)
    if not leaves or not all(isinstance(x, (jax.Array, np.ndarray)) for x in leaves):
        return False
    floats = [x for x in leaves if _inexact(x)]
    return bool(floats) and all(bool(jnp.isfinite(x).all()) for x in floats)


_PATTERNS: dict = {}


def _pattern(name, accept=_usable):
    """The first ``(args, kwargs, plain output)`` on which jax.numpy's ``name`` is usable."""
    key = (name, accept)
    if key not in _PATTERNS:
        _PATTERNS[key] = None
        for args, kwargs in [SPECIAL[name]] if name in SPECIAL else GENERIC:
            try:
                out = _plain_call(name, jnp, args, kwargs)
            except Exception:
                continue
            if accept(out):
                _PATTERNS[key] = (args, kwargs, out)
                break
    return _PATTERNS[key]


def _assert_same(got, want):
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        assert not isinstance(g, fj.Tracked)
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def _weights(name, out):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return [rng.normal(size=np.shape(x)).astype(np.float32) for x in out]


def _float_leaves(out):
    is_t = lambda x: isinstance(x, fj.Tracked)  # noqa: E731
    return [x for x in jax.tree_util.tree_leaves(out, is_leaf=is_t) if _inexact(x)]


def _tolerance(name):
    return dict(rtol=2e-3, atol=2e-4) if name.startswith("linalg.") else dict(rtol=2e-4, atol=2e-5)


# -- the contract, name by name -------------------------------------------------------------
def test_every_lifted_name_is_checked_or_excluded():
    missing = [n for n in CHECKED if _pattern(n) is None]
    assert not missing, f"no argument pattern applies; add to SPECIAL or EXCLUDED: {missing}"
    stale = sorted(set(EXCLUDED) - set(NAMES))
    assert not stale, f"EXCLUDED names that fluxjax.numpy no longer lifts: {stale}"
    assert len(CHECKED) + len(EXCLUDED) == len(NAMES)


def test_lifted_lists_cover_jax_numpy():
    public = [n for n in dir(jnp) if not n.startswith("_") and callable(getattr(jnp, n))]
    funcs = [n for n in public if not isinstance(getattr(jnp, n), type) and n != "linalg"]
    assert set(fnp.LIFTED) >= {n for n in funcs if not hasattr(getattr(jnp, n), "dtype")}
    assert {"sin", "sum", "matmul", "concatenate", "where"} <= set(fnp.LIFTED)
    assert {"inv", "det", "norm", "solve", "cholesky"} <= set(fnp.LINALG_LIFTED)
    assert fnp.float32 is jnp.float32 and fnp.pi == jnp.pi  # constants re-exported as is


@pytest.mark.parametrize("name", CHECKED)
def test_plain_inputs_match_jax_numpy(name):
    found = _pattern(name)
    assert found is not None, f"no argument pattern applies to {name}"
    args, kwargs, want = found
    _assert_same(_plain_call(name, fnp, args, kwargs), want)


@pytest.mark.parametrize("name", CHECKED)
def test_tracked_gradient_matches_jax_grad(name):
    found = _pattern(name)
    assert found is not None, f"no argument pattern applies to {name}"
    args, kwargs, want = found
    spec = (args, kwargs)
    leaves = _args_of(spec)  # each Arg appears once in a pattern
    params = {id(a): fj.param(a.value) for a in leaves}
    targs, tkwargs = _fill(spec, lambda a: params[id(a)])
    outs = _float_leaves(_get(fnp, name)(*targs, **tkwargs))
    ws = _weights(name, outs)
    assert outs and all(isinstance(o, fj.Tracked) for o in outs), "the output is not tracked"
    for o, x in zip(outs, _float_leaves(want)):
        assert_close(np.asarray(fj.data(o)), np.asarray(x), **_tolerance(name))
    loss = sum(fnp.real(o * w).sum() for o, w in zip(outs, ws))
    fj.back_(loss)

    def pure(*xs):
        it = iter(xs)
        pargs, pkwargs = _fill(spec, lambda a: next(it))
        res = _float_leaves(_get(jnp, name)(*pargs, **pkwargs))
        return sum(jnp.real(o * w).sum() for o, w in zip(res, ws))

    expected = jax.grad(pure, argnums=tuple(range(len(leaves))))(*[a.value for a in leaves])
    for a, e in zip(leaves, expected):
        got = params[id(a)].grad
        assert got.shape == a.value.shape
        assert_close(np.asarray(got), np.asarray(e), **_tolerance(name))


def _arrays(out):
    leaves = jax.tree_util.tree_leaves(out)
    return bool(leaves) and all(isinstance(x, (jax.Array, np.ndarray)) for x in leaves)


def _nonfloat(out):
    return _arrays(out) and not any(_inexact(x) for x in jax.tree_util.tree_leaves(out))


@pytest.mark.parametrize("name", [n for n, why in EXCLUDED.items() if why in (INT, BOOL)])
def test_nonfloat_output_is_plain_with_tracked_inputs(name):
    found = _pattern(name, _nonfloat)
    assert found is not None, f"{name} is excluded as {EXCLUDED[name]!r}, but never runs so"
    args, kwargs, want = found
    kind = jnp.integer if EXCLUDED[name] == INT else jnp.bool_
    assert all(jnp.issubdtype(x.dtype, kind) for x in jax.tree_util.tree_leaves(want))
    _assert_same(_tracked_call(name, args, kwargs), want)


_k = np.array([1, 2, 3, 4], np.int32)
INT_PATTERNS = [
    (_k,),
    (_k % 3, _k),
    (np.array([1, 200, 7], np.uint8),),
    (np.array([0, 2]), (3, 4)),
    ((np.array([0, 2]), np.array([1, 3])), (3, 4)),
]


@pytest.mark.parametrize("name", [n for n, why in EXCLUDED.items() if why == INTONLY])
def test_integer_only_functions(name):
    f, g = _get(fnp, name), _get(jnp, name)
    for args in INT_PATTERNS:
        try:
            want = g(*args)
        except Exception:
            continue
        _assert_same(f(*args), want)
        break
    else:
        raise AssertionError(f"{name} is excluded as {INTONLY!r}, but never runs on integers")
    # float input: fluxjax.numpy with a param does what jax.numpy does with the float data
    floats = [np.ones(a.shape, np.float32) if isinstance(a, np.ndarray) else a for a in args]
    tracked = [fj.param(a) if isinstance(a, np.ndarray) else a for a in floats]
    try:
        want = g(*floats)
    except Exception as e:
        with pytest.raises(type(e)):
            f(*tracked)
    else:
        got = jax.tree_util.tree_map(fj.data, f(*tracked), is_leaf=fj.tracker.is_tracked)
        _assert_same(got, want)


@pytest.mark.parametrize("name", [n for n, why in EXCLUDED.items() if why == NODIFF])
def test_nondifferentiable_functions_still_track_forward(name):
    args, kwargs, want = _pattern(name)
    _assert_same(_plain_call(name, fnp, args, kwargs), want)
    got = _float_leaves(_tracked_call(name, args, kwargs))
    assert got and all(isinstance(o, fj.Tracked) for o in got)
    for o, x in zip(got, _float_leaves(want)):
        np.testing.assert_allclose(np.asarray(fj.data(o)), np.asarray(x), rtol=1e-5)


@pytest.mark.parametrize("name", [n for n, why in EXCLUDED.items() if why == DYNAMIC])
def test_value_dependent_shapes_raise_or_track(name):
    """Plain inputs behave as jax.numpy; tracked inputs either work (tracked floats, equal
    values) or raise: never silently return an untracked float, which would lose the
    gradient."""
    found = _pattern(name, _arrays)
    assert found is not None, f"{name} is excluded as {DYNAMIC!r}, but never runs"
    args, kwargs, want = found
    _assert_same(_plain_call(name, fnp, args, kwargs), want)
    try:
        out = _tracked_call(name, args, kwargs)
    except (TypeError, ValueError, IndexError, jax.errors.ConcretizationTypeError):
        return
    is_t = lambda x: isinstance(x, fj.Tracked)  # noqa: E731
    got, exp = (jax.tree_util.tree_leaves(o, is_leaf=is_t) for o in (out, want))
    assert len(got) == len(exp)
    for o, x in zip(got, exp):
        assert isinstance(o, fj.Tracked) == _inexact(x)
        np.testing.assert_array_equal(np.asarray(fj.data(o)), np.asarray(x))


_CREATE_CALLS = {"indices": ((3, 2),), "kaiser": (5, 2.0), "tri": (3, 4)}
_CALLABLE_CALLS = {
    "apply_along_axis": lambda h: h(jnp.sum, 0, A.value),
    "apply_over_axes": lambda h: h(jnp.sum, A.value, [0]),
    "fromfunction": lambda h: h(lambda i, j: i + j, (2, 3), dtype=jnp.float32),
    "frompyfunc": lambda h: h(jnp.add, 2, 1)(A.value, B.value),
    "mask_indices": lambda h: h(3, jnp.triu),
    "piecewise": lambda h: h(V.value, [V.value < 0.5], [lambda x: -x, lambda x: x]),
    "vectorize": lambda h: h(lambda a, b: a * b)(A.value, V.value),
}


@pytest.mark.parametrize("name", [n for n, why in EXCLUDED.items() if why in (CALLABLE, CREATE)])
def test_excluded_array_functions_match_jax_numpy(name):
    if EXCLUDED[name] == CREATE:
        args = _CREATE_CALLS.get(name, (3,))
        call = lambda h: h(*args)  # noqa: E731
    else:
        call = _CALLABLE_CALLS[name]
    _assert_same(call(_get(fnp, name)), call(_get(jnp, name)))


@pytest.mark.parametrize("name", [n for n, why in EXCLUDED.items() if why == UTIL])
def test_utilities_are_re_exported_unchanged(name):
    assert _get(fnp, name).__wrapped__ is _get(jnp, name)


# -- finite differences on a sample, through fluxjax.gradcheck -------------------------------
GRADCHECK = {
    "sin": lambda x: fnp.sin(x).sum(),
    "exp": lambda x: (fnp.exp(x) * x).sum(),
    "log1p": lambda x: fnp.log1p(x).sum(),
    "tanh": lambda x: (fnp.tanh(x) ** 2).sum(),
    "sqrt": lambda x: fnp.sqrt(x).sum(),
    "arctan2": lambda x: fnp.arctan2(x, x[::-1] + 1).sum(),
    "matmul": lambda x: (fnp.matmul(x, x.T) ** 2).sum(),
    "cumprod": lambda x: fnp.cumprod(x, axis=1).sum(),
    "var": lambda x: fnp.var(x, axis=0).sum(),
    "logaddexp": lambda x: fnp.logaddexp(x, 2 * x).sum(),
    "concatenate": lambda x: (fnp.concatenate([x, x**2], axis=0) ** 2).sum(),
    "where": lambda x: fnp.where(x > 0.5, x**2, -x).sum(),
    "einsum": lambda x: fnp.einsum("ij,kj->", x, x),
    "linalg.det": lambda x: fnp.linalg.det(x[:, :3] + 2 * fnp.eye(3)),
    "linalg.norm": lambda x: fnp.linalg.norm(x),
    "linalg.inv": lambda x: fnp.linalg.inv(x[:, :3] + 2 * fnp.eye(3)).sum(),
    "linalg.slogdet": lambda x: fnp.linalg.slogdet(x[:, :3] + 2 * fnp.eye(3))[1],
}


@pytest.mark.parametrize("name", sorted(GRADCHECK))
def test_gradcheck_against_finite_differences(name):
    f = GRADCHECK[name]
    x = np.random.default_rng(zlib.crc32(name.encode())).uniform(0.2, 0.8, (3, 4))
    x = jnp.asarray(x, jnp.float32)
    assert fj.gradcheck(f, x)
    # and the imperative path gives the gradient that was just checked
    p = fj.param(x)
    fj.back_(f(p))
    np.testing.assert_allclose(p.grad, fj.gradient(f, x)[0], rtol=1e-4, atol=1e-5)
