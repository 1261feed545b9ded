"""Constructor argument checks: a bad size, stride, kernel or dilation is refused where it is
given, with a ValueError naming the layer and the argument (never a ZeroDivisionError, a
NumPy "negative dimensions" or a silently wrapped axis later)."""

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj

CONVS = [fj.Conv, fj.CrossCor, fj.ConvTranspose, fj.DepthwiseConv]


@pytest.mark.parametrize("layer", CONVS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("stride", [0, -1, (1, 0)])
def test_conv_stride_must_be_positive(layer, stride):
    with pytest.raises(ValueError, match=rf"{layer.__name__}.*stride"):
        layer((3, 3), 2, 4, stride=stride)


@pytest.mark.parametrize("layer", CONVS, ids=lambda c: c.__name__)
def test_conv_kernel_channels_and_dilation_must_be_positive(layer):
    name = layer.__name__
    with pytest.raises(ValueError, match=rf"{name}.*\bk\b"):
        layer((0, 3), 2, 4)
    with pytest.raises(ValueError, match=rf"{name}.*\bk\b"):
        layer((3, -1), 2, 4)
    with pytest.raises(ValueError, match=rf"{name}.*\bin\b"):
        layer((3, 3), 0, 4)
    with pytest.raises(ValueError, match=rf"{name}.*\bout\b"):
        layer((3, 3), 2, -4)
    with pytest.raises(ValueError, match=rf"{name}.*dilation"):
        layer((3, 3), 2, 4, dilation=0)
    with pytest.raises(ValueError, match=rf"{name}.*dilation"):
        layer((3, 3), 2, 4, dilation=(1, -2))


def test_conv_from_arrays_checks_stride_too():
    with pytest.raises(ValueError, match="Conv.*stride"):
        fj.Conv(jnp.ones((3, 3, 1, 2)), jnp.zeros(2), stride=0)


@pytest.mark.parametrize("layer", [fj.MaxPool, fj.MeanPool], ids=lambda c: c.__name__)
def test_pool_stride_and_window_must_be_positive(layer):
    name = layer.__name__
    for stride in (0, -1, (2, 0)):
        with pytest.raises(ValueError, match=rf"{name}.*stride"):
            layer((2, 2), stride=stride)
    with pytest.raises(ValueError, match=rf"{name}.*\bk\b"):
        layer((0, 2))


def test_functional_pool_and_conv_refuse_a_zero_stride():
    x = jnp.ones((1, 6, 6, 1))
    for f in (fj.maxpool, fj.meanpool):
        with pytest.raises(ValueError, match="stride"):
            f(x, (2, 2), stride=0)
    with pytest.raises(ValueError, match="stride"):
        fj.conv(x, jnp.ones((2, 2, 1, 1)), stride=0)


@pytest.mark.parametrize("make", [fj.BatchNorm, fj.InstanceNorm], ids=lambda c: c.__name__)
@pytest.mark.parametrize("n", [0, -1])
def test_norm_channels_must_be_positive(make, n):
    with pytest.raises(ValueError, match=rf"{make.__name__}.*channels"):
        make(n)


def test_groupnorm_layernorm_diagonal_dense_sizes():
    with pytest.raises(ValueError, match="GroupNorm.*channels"):
        fj.GroupNorm(0, 1)
    with pytest.raises(ValueError, match="LayerNorm.*n"):
        fj.LayerNorm(0)
    with pytest.raises(ValueError, match="Diagonal.*n"):
        fj.Diagonal(-1)
    with pytest.raises(ValueError, match="Dense.*n_out"):
        fj.Dense(3, 0)
    with pytest.raises(ValueError, match="Dense.*n_in"):
        fj.Dense(-2, 3)


@pytest.mark.parametrize(
    "make, name", [(fj.RNN, "RNN"), (fj.LSTM, "LSTM"), (fj.GRU, "GRU"), (fj.RNNCell, "RNNCell"),
                   (fj.LSTMCell, "LSTMCell"), (fj.GRUCell, "GRUCell")],
)  # fmt: skip
def test_recurrent_sizes_must_be_positive(make, name):
    with pytest.raises(ValueError, match=rf"{name}\b.*n_out"):
        make(3, 0)
    with pytest.raises(ValueError, match=rf"{name}\b.*n_in"):
        make(-1, 3)


def test_dropout_dims_out_of_range_raise_at_the_call():
    d = fj.Dropout(0.5, dims=5)
    with pytest.raises(ValueError, match=r"Dropout.*dims.*5.*4"):
        d(jnp.ones((2, 3, 3, 4)))
    with pytest.raises(ValueError, match=r"Dropout.*dims"):
        fj.Dropout(0.5, dims=(0, -5))(jnp.ones((2, 3, 3, 4)))
    before = np.asarray(d.key)
    with pytest.raises(ValueError):
        d(jnp.ones((2, 3)))
    np.testing.assert_array_equal(np.asarray(d.key), before)  # nothing drawn
    # in range, negative axes count from the end as before
    y = fj.Dropout(0.5, dims=-1)(jnp.ones((4, 10)))
    assert (np.asarray(y) == np.asarray(y)[:1]).all()


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.5"])
def test_dropout_p_is_checked_at_construction(p):
    with pytest.raises(ValueError, match="Dropout.*p"):
        fj.Dropout(p)
    with pytest.raises(ValueError, match="AlphaDropout.*p"):
        fj.AlphaDropout(p)


def test_layernorm_size_error_names_layernorm():
    with pytest.raises(ValueError, match=r"LayerNorm\(5\)") as e:
        fj.LayerNorm(5)(jnp.ones((2, 3)))
    assert "Diagonal" not in str(e.value)


def test_functional_conv_refuses_a_dilated_kernel_wider_than_the_input():
    x = jnp.ones((1, 5, 1))
    w = jnp.ones((3, 1, 1))
    assert fj.conv(x, w, dilation=2).shape == (1, 1, 1)  # spans exactly 5
    with pytest.raises(ValueError, match=r"conv.*kernel.*dilation"):
        fj.conv(x, w, dilation=3)  # spans 7 > 5
    assert fj.conv(x, w, dilation=3, pad=1).shape == (1, 1, 1)  # padded to 7
    with pytest.raises(ValueError, match=r"depthwiseconv.*kernel.*dilation"):
        fj.depthwiseconv(x, jnp.ones((3, 2, 1)), dilation=3)
    with pytest.raises(ValueError, match=r"conv.*kernel"):
        fj.conv(jnp.ones((1, 2, 2, 1)), jnp.ones((3, 3, 1, 1)))
