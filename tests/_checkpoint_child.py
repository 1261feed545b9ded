"""Child process of test_checkpoint_resume.py: trains with ``checkpoint=``, optionally kills
itself (SIGKILL) from a callback after a given number of steps, and at the end writes the
model's arrays and the optimiser state with ``fluxjax.save``.

    python _checkpoint_child.py STYLE MODEL FOLDER KILL_AFTER OUT [EVERY] [JIT]

STYLE: implicit | explicit; MODEL: bn (BatchNorm + Dropout, shuffled DataLoader) | lstm
(an LSTM, a list of batches); KILL_AFTER: steps of this process before SIGKILL (0: none).
"""

import os
import signal
import sys

import numpy as np

import fluxjax as fj
from fluxjax.train import OptState


def build(kind):
    fj.seed(7)
    if kind == "bn":
        m = fj.Chain(fj.Dense(3, 5), fj.BatchNorm(5, fj.relu), fj.Dropout(0.3), fj.Dense(5, 1))
    else:
        m = fj.Chain(fj.LSTM(3, 4), fj.Dense(4, 1))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 3)).astype(np.float32)
    Y = rng.standard_normal((24, 1)).astype(np.float32)
    if kind == "bn":
        data = fj.DataLoader((X, Y), 4, shuffle=True)  # key from the seeded global stream
    else:
        data = [(X[i : i + 4], Y[i : i + 4]) for i in range(0, 24, 4)]
    return m, data


def main(style, kind, folder, kill_after, out, every="0", jit="1"):
    m, data = build(kind)
    opt, seen = fj.ADAM(0.01), [0]

    def cb():
        seen[0] += 1
        if seen[0] == int(kill_after):
            os.kill(os.getpid(), signal.SIGKILL)

    kw = dict(cb=cb, epochs=3, checkpoint=folder, jit=jit == "1")
    kw["checkpoint_every"] = int(every) or None
    if style == "implicit":
        losses = fj.train_(lambda x, y: fj.mse(m(x), y), fj.params(m), data, opt, **kw)
        state = OptState(opt, m)  # a handle on opt's state for m's params (no reset)
    else:
        state = fj.setup(opt, m)
        losses = fj.train_(lambda m, x, y: fj.mse(m(x), y), m, data, state, **kw)
    fj.save(out + ".model", m)
    fj.save(out + ".opt", state)
    np.save(out + ".losses.npy", np.asarray(losses))


if __name__ == "__main__":
    main(*sys.argv[1:])
