"""Callback helpers for ``train_``: ``throttle`` and ``stop``."""

import threading
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
    dropped, except that with ``trailing=True`` the latest one is kept. When the cool-down
    ends, a timer (a ``threading.Timer``, as Flux's ``@async`` task) runs the kept call,
    which starts a new cool-down; with nothing kept, the throttle is ready again. Returns
    the result of the last run of ``f``.

    The postponed call runs on the timer's thread, so a throttled ``f`` should only read
    (print a loss, save a copy). An exception it raises there (``stop()`` included) is
    raised by the next call to the throttled function, or by ``flush()``, which also runs
    a still-postponed call at once; ``train_`` flushes its throttled callbacks when it
    ends. ``clock`` is for tests: with a clock other than ``time.monotonic`` no timer
    runs, and each call first plays the cool-down up to the clock's time.

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
        self.error = None  # raised by the postponed call on the timer's thread
        self._lock = threading.RLock()
        self._timer = None

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

    def _arm(self):
        """Start a timer for the end of the cool-down (only with the real clock)."""
        if self.clock is not time.monotonic or self.cooling_until is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(self.cooling_until - self.clock(), 0.0)
        self._timer = threading.Timer(delay, self._tick)
        self._timer.daemon = True
        self._timer.start()

    def _tick(self):
        with self._lock:
            self._timer = None
            try:
                self._catch_up(self.clock())
            except BaseException as e:  # noqa: BLE001 - kept for the caller's thread
                self.error, self.later = e, None
            self._arm()

    def _raise_error(self):
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def __call__(self, *args, **kwargs):
        with self._lock:
            self._raise_error()
            self._catch_up(self.clock())
            if self.cooling_until is None:
                if self.leading:
                    self._run((args, kwargs))
                else:
                    self.later = (args, kwargs)
                self.cooling_until = self.clock() + self.timeout
                self._arm()
            elif self.trailing:
                self.later = (args, kwargs)
            return self.result

    def flush(self):
        """Run the postponed call now, if there is one, and end the cool-down; returns the
        last result (or raises what the timer's call raised)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.cooling_until = None
            self._raise_error()
            if self.later is not None:
                call, self.later = self.later, None
                self._run(call)
            return self.result

    def __repr__(self):
        return f"throttle({self.f!r}, {self.timeout})"
