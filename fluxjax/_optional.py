"""Optional dependencies: imported where they are used, with an error naming the extra."""

from __future__ import annotations

import importlib


def require(module: str, extra: str, feature: str):
    """require(module, extra, feature) -> the imported ``module``, or ImportError naming
    the pip extra that installs it.

    >>> require("json", "io", "save").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        raise ImportError(
            f"{feature} needs the optional package {top!r}, which is not installed: "
            f"pip install 'fluxjax[{extra}]'"
        ) from e
