"""``tracker.Guarded`` keeps an exception only for the thread tracing through ``tracing``:
another thread calling the same function meanwhile gets its exception raised as usual
(a swallowed one would run a trace that returned None, consuming donated buffers)."""

import threading

import pytest

from fluxjax.tracker import Guarded


def test_an_exception_outside_tracing_is_raised_while_another_thread_traces():
    inside, release = threading.Event(), threading.Event()

    def fn(who):
        if who == "tracer":
            inside.set()
            release.wait(10)
        raise ValueError(who)

    g, seen = Guarded(fn), {}

    def tracer():
        try:
            g.tracing(g, "tracer")
        except ValueError as e:
            seen["tracer"] = str(e)

    t = threading.Thread(target=tracer)
    t.start()
    assert inside.wait(10)
    with pytest.raises(ValueError, match="other"):  # not swallowed by the tracer's block
        g("other")
    release.set()
    t.join(10)
    assert seen == {"tracer": "tracer"}  # the tracer still gets its own, after its trace
