"""The digits demo: a short run writes a loadable checkpoint and a PNG, and reports accuracy."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("safetensors")

import fluxjax as fj  # noqa: E402
from fluxjax import demo  # noqa: E402


def test_short_run_writes_checkpoint_and_figure(tmp_path, capsys):
    out = tmp_path / "run"
    result = demo.main(["--epochs", "2", "--hidden", "32", "--out", str(out), "--no-progress"])

    assert isinstance(result["accuracy"], float)
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["accuracy"] > 0.5  # two epochs are plenty to beat chance (0.1) by far
    checkpoint, figure = out / "digits.safetensors", out / "digits.png"
    assert result["checkpoint"] == str(checkpoint) and checkpoint.stat().st_size > 0
    assert result["figure"] == str(figure)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["reloaded_same"] is True
    assert result["epoch_loss"].shape == result["epoch_accuracy"].shape == (2,)

    printed = capsys.readouterr().out
    assert "test accuracy" in printed and str(checkpoint) in printed and str(figure) in printed

    # The checkpoint loads into a freshly built model of the same shape.
    model = fj.load(str(checkpoint), demo.build_model(32))
    _, _, x_test, y_test = demo.load_digits_split()
    assert demo.accuracy(model, x_test, y_test) == pytest.approx(result["accuracy"], rel=1e-5)


def test_split_is_fixed_and_scaled():
    x_train, y_train, x_test, y_test = demo.load_digits_split()
    assert x_train.shape == (1500, 64) and x_test.shape == (297, 64)
    assert x_train.dtype == np.float32 and x_train.min() >= 0.0 and x_train.max() <= 1.0
    again = demo.load_digits_split()
    assert np.array_equal(again[0], x_train) and np.array_equal(again[3], y_test)
    assert set(np.unique(y_train)) == set(range(10))


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        demo.parse_args(["--help"])
    assert exit_.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--epochs", "--hidden", "--lr", "--batchsize", "--seed", "--out"):
        assert option in usage


def test_bad_option_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        demo.parse_args(["--epochs", "0"])
    assert exit_.value.code == 2
    assert "at least 1" in capsys.readouterr().err
