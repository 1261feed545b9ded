"""``train_(checkpoint=)`` survives SIGKILL: a child process trains, is killed mid-epoch
(once or twice), the same command is run again, and the final params, running statistics,
dropout keys, recurrent state and optimiser state equal bit for bit those of a run never
interrupted (``np.array_equal``), in both styles."""

import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

CHILD = os.path.join(os.path.dirname(__file__), "_checkpoint_child.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(style, kind, folder, kill_after, out, every, jit="1"):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    args = [sys.executable, CHILD, style, kind, folder, str(kill_after), out, str(every), jit]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def arrays(out):
    got = {f"model/{k}": v for k, v in load_file(out + ".model").items()}
    got.update({f"opt/{k}": v for k, v in load_file(out + ".opt").items()})
    got["losses"] = np.load(out + ".losses.npy")
    return got


# (style, model, kills: steps each killed process runs before SIGKILL, checkpoint_every,
# jit, rerun once more after completion)
VARIANTS = [
    ("implicit", "bn", [9], 0, "1", True),  # epoch-end checkpoints; killed inside epoch 1
    ("explicit", "bn", [7, 6], 4, "1", False),  # killed twice, between checkpoints
    ("explicit", "lstm", [5], 4, "1", False),
    ("implicit", "bn", [10], 4, "0", False),  # the eager loop
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v)))
def test_killed_and_rerun_equals_uninterrupted(tmp_path, variant):
    style, kind, kills, every, jit, rerun = variant
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    done = run(style, kind, str(tmp_path / "ref_ckpt"), 0, ref, every, jit)
    assert done.returncode == 0, done.stderr
    folder = str(tmp_path / "ckpt")
    for k in kills:
        killed = run(style, kind, folder, k, out, every, jit)
        assert killed.returncode == -9, killed.stderr  # SIGKILL: no cleanup ran
        assert not os.path.exists(out + ".model")
    done = run(style, kind, folder, 0, out, every, jit)
    assert done.returncode == 0, done.stderr
    want, got = arrays(ref), arrays(out)
    assert want.keys() == got.keys()
    assert len(want["losses"]) == 18  # 3 epochs of 6 batches: every step's loss
    for name in want:
        assert np.array_equal(want[name], got[name]), name
    assert any(k.startswith("opt/") and k.endswith("count") for k in got)
    if rerun:  # complete: no step, so no callback (it would kill); the same values
        again = run(style, kind, folder, 1, out, every, jit)
        assert again.returncode == 0, again.stderr
        assert all(np.array_equal(v, arrays(out)[k]) for k, v in want.items())
