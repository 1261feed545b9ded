"""Child of tests/test_state_paths.py: runs the scenario on ``devices=2`` (this process
has two host devices) for every layer and writes the results to ``argv[1]`` (npz)."""

from __future__ import annotations

import sys

import numpy as np
from _state_paths import LAYERS, scenario

if __name__ == "__main__":
    arrays = {}
    for name in LAYERS:
        out = scenario(name, "devices")
        for key, value in out.items():
            values = value if isinstance(value, list) else [value]
            for i, v in enumerate(values):
                arrays[f"{name}/{key}/{i}"] = v
    np.savez(sys.argv[1], **arrays)
