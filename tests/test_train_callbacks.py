"""throttle: Flux's leading/trailing semantics, driven by a fake clock, and its real timer."""

import threading
import time

import pytest

from fluxjax.train import throttle


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drive(f, clock, times):
    """Call ``f(t)`` at each time ``t``; returns what ``f`` returned."""
    out = []
    for t in times:
        clock.now = t
        out.append(f(t))
    return out


def make(timeout=1.0, **kw):
    clock, calls = Clock(), []

    def f(t):
        calls.append(t)
        return t

    return throttle(f, timeout, clock=clock, **kw), clock, calls


def test_leading_runs_at_once_and_drops_calls_while_cooling():
    f, clock, calls = make()
    drive(f, clock, [0.0, 0.5, 0.99, 1.0, 1.5, 2.5])
    assert calls == [0.0, 1.0, 2.5]


def test_returns_the_last_result():
    f, clock, calls = make()
    assert drive(f, clock, [0.0, 0.5, 1.2, 1.3]) == [0.0, 0.0, 1.2, 1.2]


def test_trailing_runs_the_latest_call_when_the_cool_down_ends():
    f, clock, calls = make(trailing=True)
    drive(f, clock, [0.0, 0.3, 0.6])
    assert calls == [0.0]
    drive(f, clock, [1.2])  # the timer fired at 1.0 with the 0.6 call; 1.2 now waits
    assert calls == [0.0, 0.6]
    assert f.flush() == 1.2
    assert calls == [0.0, 0.6, 1.2]
    assert f.flush() == 1.2 and len(calls) == 3  # nothing left


def test_trailing_after_a_long_pause_is_not_late_twice():
    f, clock, calls = make(trailing=True)
    drive(f, clock, [0.0, 0.5, 5.0])
    # Flux: 0.5 runs at the 1.0 tick, the cool-down ends at 2.0, so 5.0 runs at once
    assert calls == [0.0, 0.5, 5.0]


def test_not_leading_postpones_the_first_call():
    f, clock, calls = make(leading=False)
    drive(f, clock, [0.0, 0.5])
    assert calls == []
    drive(f, clock, [1.1])  # runs the postponed 0.0 call; 1.1 is dropped (no trailing)
    assert calls == [0.0]
    drive(f, clock, [3.0])
    assert calls == [0.0]
    assert f.flush() == 3.0


def test_not_leading_but_trailing_runs_only_the_latest():
    f, clock, calls = make(leading=False, trailing=True)
    drive(f, clock, [0.0, 0.5])
    drive(f, clock, [1.1])
    assert calls == [0.5]


def test_arguments_and_keywords_pass_through():
    got = []
    g = throttle(lambda *a, **k: got.append((a, k)), 10, clock=Clock())
    g(1, 2, key="v")
    g(3)
    assert got == [((1, 2), {"key": "v"})]


def test_an_error_in_f_leaves_it_ready():
    clock = Clock()
    state = {"fail": True}

    def f():
        if state["fail"]:
            raise RuntimeError("boom")
        return "ok"

    g = throttle(f, 10, clock=clock)
    with pytest.raises(RuntimeError):
        g()
    state["fail"] = False
    assert g() == "ok"  # no cool-down was started by the failed call


def test_real_clock_counts_only():
    calls = []
    g = throttle(lambda: calls.append(1), 3600)
    for _ in range(100):
        g()
    assert len(calls) == 1


# ---- the real timer: the postponed call fires by itself, as Flux's @async task does ----


def timed(timeout, **kw):
    """A throttled recorder: ``got`` gets (argument, thread) and ``fired`` is set."""
    fired, got = threading.Event(), []

    def f(x):
        got.append((x, threading.current_thread()))
        fired.set()
        return x

    return throttle(f, timeout, **kw), fired, got


def test_a_postponed_call_fires_on_a_timer_without_another_call():
    g, fired, got = timed(0.2, leading=False, trailing=True)
    assert g(1) is None
    assert fired.wait(30), "the postponed call never ran"
    assert [x for x, _ in got] == [1]
    assert got[0][1] is not threading.current_thread()  # run by the timer, not by g(1)


def test_the_trailing_call_fires_on_a_timer_after_a_leading_one():
    g, fired, got = timed(0.2, trailing=True)
    g(1)
    assert [x for x, _ in got] == [1] and got[0][1] is threading.current_thread()
    fired.clear()
    g(2)  # kept during the cool-down
    g(3)  # replaces it: only the latest runs
    assert fired.wait(30), "the trailing call never ran"
    assert [x for x, _ in got] == [1, 3]
    assert g.result == 3


def test_an_error_in_the_timers_call_is_raised_by_the_next_call():
    done = threading.Event()

    def f(x):
        try:
            if x == "bad":
                raise RuntimeError("boom on the timer")
            return x
        finally:
            done.set()

    g = throttle(f, 0.2, leading=False)
    g("bad")
    assert done.wait(30)
    deadline = time.monotonic() + 30
    while g.error is None and time.monotonic() < deadline:  # the timer stores it after f
        time.sleep(0.01)
    with pytest.raises(RuntimeError, match="boom on the timer"):
        g("good")  # raises instead of being kept
    assert g.error is None and g.flush() is None  # reported once; nothing was kept
    g("good")
    assert g.flush() == "good"


def test_flush_runs_the_postponed_call_and_cancels_the_timer():
    g, fired, got = timed(3600, leading=False)
    g(7)
    assert g.flush() == 7 and [x for x, _ in got] == [7]
    assert g._timer is None and g.cooling_until is None
