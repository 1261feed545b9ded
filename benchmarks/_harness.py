"""A small interleaved timing harness.

Every contender is a `Step`: a stateful zero-argument callable that advances its own
training state by `steps` optimisation steps and returns something to wait on.

`interleave` first warms every contender up (so compilation and first-call costs are not
timed) and picks, per contender, a block of K calls lasting about `block_s` seconds (so fast
and slow contenders get comparable time on the clock, and the whole run has a predictable
length); K is re-tuned after every block from the time that block took, so a contender that
slows down (e.g. on a busy machine) keeps to about `block_s` per block.
It then runs `rounds` rounds. In each round every contender runs one block, and the
order of the contenders rotates from round to round, so slow drifts of the machine (thermal
state, other processes, caches) are spread over all contenders instead of hitting one of
them. At the end of each block the harness waits on the block's last output
(`jax.block_until_ready` for JAX; nothing for eager PyTorch on CPU), so asynchronous
dispatch can pipeline steps inside a block, but every block's time covers all of its work.
The figure kept per contender is the median over rounds of microseconds per training step.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax


def _no_sync(out: Any) -> Any:
    return out


@dataclass
class Step:
    """One contender: `run()` performs `steps` training steps and returns a value to wait on."""

    run: Callable[[], Any]
    steps: int = 1
    sync: Callable[[Any], Any] = jax.block_until_ready

    @classmethod
    def eager(cls, run: Callable[[], Any], steps: int = 1) -> Step:
        """A contender that finishes its work before returning (e.g. PyTorch on CPU)."""
        return cls(run, steps, _no_sync)


@dataclass
class Result:
    """Per-contender timings: microseconds per step, one sample per round."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        """The fastest round: closest to the uncontended speed on a busy machine."""
        return min(self.samples)

    @property
    def spread(self) -> float:
        """Interquartile range / median over the rounds: a rough noise indicator."""
        if len(self.samples) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / self.median


def _time_block(step: Step, calls: int) -> float:
    """Seconds for `calls` calls of `step.run`, waiting on the last output."""
    out = None
    t0 = time.perf_counter()
    for _ in range(calls):
        out = step.run()
    step.sync(out)
    return time.perf_counter() - t0


def _block_calls(block_s: float, seconds_per_call: float) -> int:
    return max(1, round(block_s / max(seconds_per_call, 1e-7)))


def interleave(
    contenders: Mapping[str, Step],
    *,
    rounds: int = 10,
    block_s: float = 0.1,
    warmup: int = 3,
) -> dict[str, Result]:
    """Time `contenders` round-robin; return name -> `Result` (µs per step per round).

    `warmup` calls of each contender run, and are waited on, before any timing. Then three
    single calls are timed and their median t sets the first block: `K = round(block_s / t)`
    calls (at least 1); after each block, t is that block's time per call. A call of a `Step`
    with `steps=n` counts as n training steps in the per-step time.
    """
    names = list(contenders)
    calls = {}
    for name in names:
        step = contenders[name]
        out = None
        for _ in range(warmup):
            out = step.run()
        step.sync(out)
        t_call = statistics.median(_time_block(step, 1) for _ in range(3))
        calls[name] = _block_calls(block_s, t_call)

    results = {n: Result() for n in names}
    gc_was_enabled = gc.isenabled()
    try:
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                step = contenders[name]
                gc.collect()
                gc.disable()
                seconds = _time_block(step, calls[name])
                gc.enable()
                results[name].samples.append(1e6 * seconds / (calls[name] * step.steps))
                calls[name] = _block_calls(block_s, seconds / calls[name])
    finally:
        if gc_was_enabled:
            gc.enable()
    return results


def ratios(results: Mapping[str, Result], baseline: str) -> dict[str, float]:
    """Median time of each contender divided by the baseline's (> 1 means slower)."""
    base = results[baseline].median
    return {name: res.median / base for name, res in results.items()}
