"""Callback helpers for ``train_``: ``throttle`` and ``stop``."""

import time

__all__ = ["throttle", "stop"]


class StopTraining(Exception):
    """Raised by ``stop()``; ``train_`` catches it and ends training cleanly."""

    def __init__(self):
        super().__init__("stop() was called outside train_")


def stop():
    """stop() → ends the running ``train_`` after the current step, params written back.

    Call it from a callback: ``train_(..., cb=lambda: stop() if done() else None)``.
    """
    raise StopTraining()


class throttle:
    """throttle(f, timeout, *, leading=True, trailing=False) → ``f`` at most once per timeout.

    Flux's semantics: the first call runs ``f`` at once (with ``leading=False`` it is
    postponed to the end of the ``timeout``) and starts a cool-down; during it, calls are
    dropped, except that with ``trailing=True`` the latest one runs when the cool-down
    ends, which starts a new one. Returns the result of the last run of ``f``.

    No threads: a postponed call runs inside the next call to the throttled function
    whose time is past its due time, or at ``flush()``; ``train_`` flushes its throttled
    callbacks when training ends. ``clock`` (default ``time.monotonic``) is for tests.

    >>> t = [0.0]
    >>> calls = []
    >>> f = throttle(calls.append, 1.0, clock=lambda: t[0])
    >>> for now in (0.0, 0.5, 1.2):
    ...     t[0] = now
    ...     _ = f(now)
    >>> calls
    [0.0, 1.2]
    """

    def __init__(self, f, timeout, *, leading=True, trailing=False, clock=time.monotonic):
        self.f, self.timeout = f, timeout
        self.leading, self.trailing, self.clock = leading, trailing, clock
        self.cooling_until = None  # end of the cool-down; None when cool
        self.later = None  # the postponed call, as (args, kwargs)
        self.result = None

    def _run(self, call):
        args, kwargs = call
        self.result = self.f(*args, **kwargs)

    def _catch_up(self, now):
        """Play the cool-down timer up to ``now``: run the postponed call at each tick."""
        while self.cooling_until is not None and now >= self.cooling_until:
            if self.later is None:
                self.cooling_until = None
            else:
                call, self.later = self.later, None
                self.cooling_until += self.timeout
                self._run(call)

    def __call__(self, *args, **kwargs):
        self._catch_up(self.clock())
        if self.cooling_until is None:
            if self.leading:
                self._run((args, kwargs))
            else:
                self.later = (args, kwargs)
            self.cooling_until = self.clock() + self.timeout
        elif self.trailing:
            self.later = (args, kwargs)
        return self.result

    def flush(self):
        """Run the postponed call now, if there is one; returns the last result."""
        if self.later is not None:
            call, self.later = self.later, None
            self._run(call)
        return self.result

    def __repr__(self):
        return f"throttle({self.f!r}, {self.timeout})"
