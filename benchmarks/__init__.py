"""Benchmarks of fluxjax against pure JAX, Equinox, Flax NNX and PyTorch (not shipped)."""
