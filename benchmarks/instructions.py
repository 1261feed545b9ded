"""Instructions per warm call of the core's paths, before and after a change (callgrind).

    python -m benchmarks.instructions --before DIR [--after DIR] [--rows forward,jit]

On a shared VM, CPU time per call moves by 2× from one process to the next (see
`paired_paths.py`), so a median of a few pairs can land either way. Instructions do not:
each row runs under `valgrind --tool=callgrind` twice per checkout, with ``FEW`` and with
``FEW + CALLS`` warm calls after the same warm-up, and the difference divided by
``CALLS`` is the instructions one call costs, every thread included (Python, JAX's
dispatch, XLA's runtime). It repeats to about ±0.5% between runs. Needs `valgrind` on the
PATH (not a dependency of fluxjax); each row takes about a minute per checkout.

Rows (the same code as `paired_paths.py`'s child): ``forward`` and ``gradient``
(`forward`/`gradient(() -> loss, ps)`), ``jit`` (a `fluxjax.jit` step with `back_` and
`update_` inside), ``eager`` (`train_(jit=False)`, per step), ``list`` (`train_` over a
list of 50 batches, per step).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.paired_paths import JIT_STEP

CHILD = (
    JIT_STEP
    + r"""
import sys
import jax, jax.numpy as jnp, numpy as np
import fluxjax as fj

row, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
m = fj.Chain(fj.Dense(8, 16, fj.tanh), fj.Dense(16, 2))
ps = fj.params(m)
x = jnp.asarray(rng.normal(size=(32, 8)), jnp.float32)
y = jnp.asarray(rng.normal(size=(32, 2)), jnp.float32)
loss = lambda: fj.mse(m(x), y)
lf, opt = (lambda a, b: fj.mse(m(a), b)), fj.Descent(0.01)

def jit_row():
    jitted, v = jit_step(rng), jnp.ones(16)
    return lambda: jitted(v)

rows = {
    "forward": lambda: lambda: fj.forward(loss, ps)[0],
    "gradient": lambda: lambda: fj.gradient(loss, ps)[m[0].W],
    "jit": jit_row,
    "eager": lambda: lambda: fj.train_(lf, ps, [(x, y)] * 10, opt, jit=False),
    "list": lambda: lambda: fj.train_(lf, ps, [(x, y)] * 50, opt),
}
f = rows[row]()
for _ in range(8 + n):
    r = f()
jax.block_until_ready(r)
"""
)

ROWS = {"forward": 1, "gradient": 1, "jit": 1, "eager": 10, "list": 50}  # steps per call
FEW, CALLS = 20, 200


def _instructions(root: Path, row: str, n: int) -> int:
    """Instructions of a whole run of the child doing ``n`` warm calls of ``row``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        env = {**os.environ, "PYTHONPATH": str(root), "JAX_PLATFORMS": "cpu"}
        done = subprocess.run(
            [*cmd, sys.executable, "-c", CHILD, row, str(n)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"{root}: {row} failed under valgrind:\n{done.stderr[-3000:]}")
        text = out.read_text(errors="replace")
    return int(re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M).group(1))


def per_step(root: Path, row: str) -> float:
    """Instructions one warm step of ``row`` costs in the checkout ``root``."""
    extra = _instructions(root, row, FEW + CALLS) - _instructions(root, row, FEW)
    return extra / CALLS / ROWS[row]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, type=Path)
    parser.add_argument("--after", default=Path(__file__).resolve().parents[1], type=Path)
    parser.add_argument("--rows", default=",".join(ROWS), help="e.g. forward,jit")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("benchmarks.instructions needs valgrind on the PATH")
    print("| path (instructions per call or step) | before | after | after / before |")
    print("|---|---:|---:|---:|")
    for row in args.rows.split(","):
        before, after = per_step(args.before, row), per_step(args.after, row)
        print(f"| {row} | {before:,.0f} | {after:,.0f} | {after / before:.3f} |", flush=True)


if __name__ == "__main__":
    main()
