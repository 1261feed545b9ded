"""The seed-idiom report: ratios and target verdicts computed from the medians it is given."""

from benchmarks._seed_report import EPOCHS, render_first_step, render_seed_idioms

ENV = dict(
    date="2026-01-01",
    machine="m",
    python="3.11",
    versions={"jax": "0"},
    seconds=1.0,
    load_before=0.0,
    load_after=0.0,
)


def _r(median, spread=0.1, n=5):
    return dict(median=median, best=median, spread=spread, n=n)


def _run(back_us, torch_us):
    sizes = {}
    for size in ("tiny", "small"):
        sizes[size] = {
            "gradient + update_(p, -η·gs[p])": _r(5000.0),
            "gradient + update_(opt, ps, gs)": _r(50.0),
            "back_ loop": _r(back_us),
            "torch eager": _r(torch_us),
            "torch eager, 2 threads": _r(4 * torch_us),
            "jax.jit": _r(10.0),
            "_schedule": dict(rounds=3, block_s=0.1),
        }
    train = {"10 × train_(loss, params(m), data, ADAM())": _r(3.0), EPOCHS: _r(2.5)}
    build = {"same shapes": _r(300.0), "new input size": _r(1e5)}
    return dict(env=ENV, steps=sizes, train_calls=train, build=build)


def _row(text, start):
    return next(line for line in text.splitlines() if line.startswith(start))


def test_ratios_and_verdicts_follow_the_medians():
    # PyTorch's reference is its faster thread setting: 100 µs here, not 400
    text = render_seed_idioms({"before": _run(150.0, 100.0), "after": _run(50.0, 100.0)})
    # back_ 150 / torch 100 = 1.50 (missed at ≤ 0.6), then 50 / 100 = 0.50 (met)
    assert _row(text, "| back_ loop ≤ 0.6× PyTorch (tiny)") == (
        "| back_ loop ≤ 0.6× PyTorch (tiny) | 1.50 (missed) | 0.50 (met) |"
    )
    # 5000 / 100 = 50: one decimal between 10 and 100; 50 / 100 = 0.50 meets ≤ 1.0
    assert "| 50.0 (missed) |" in _row(text, "| gradient + update_(p, -η·gs[p]) ≤ 1.0×")
    assert "| 0.50 (met) |" in _row(text, "| gradient + update_(opt, ps, gs) ≤ 1.0×")
    # 3.0 s / 2.5 s = 1.20 ≤ 1.5; the step table gives µs, × torch and × jax.jit (15.0)
    assert "1.20 (met)" in _row(text, "| 10 × `train_(…, ADAM())`")
    assert _row(text, "| back_ loop |").startswith("| back_ loop | 150 | 1.50 | 15.0 | 10% |")


def test_first_step_table_in_milliseconds():
    phases = {"import jax": dict(median=0.45, best=0.34, worst=0.93)}
    text = render_first_step({"before": dict(env=ENV, samples=7, phases=phases)})
    assert "| import jax | 450 | 340 | 930 |" in text
    assert "before: 7 processes" in text


def test_torch_reference_is_the_faster_thread_setting():
    run = _run(150.0, 100.0)
    run["steps"]["tiny"]["torch eager, 2 threads"] = _r(60.0)  # two threads faster here
    text = render_seed_idioms({"x": run})
    assert _row(text, "| back_ loop ≤ 0.6× PyTorch (tiny)") == (
        "| back_ loop ≤ 0.6× PyTorch (tiny) | 2.50 (missed) |"
    )
