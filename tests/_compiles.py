"""A counter of JAX's compilations, for the tests that count them."""

import logging

import jax


class Compiles(logging.Handler):
    """The names of the functions JAX compiles while installed (``jax_log_compiles``):

    with Compiles() as c: ...   then   c.names == ["jit(epoch_scan)", ...]
    """

    def __init__(self):
        super().__init__()
        self.names = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.names.append(message.split()[1])

    def __enter__(self):
        self.was = jax.config.jax_log_compiles
        jax.config.update("jax_log_compiles", True)
        logging.getLogger("jax").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("jax").removeHandler(self)
        jax.config.update("jax_log_compiles", self.was)
