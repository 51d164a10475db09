"""The accounts' error type (kept out of the compiled modules: mypyc cannot compile a
subclass of ``RuntimeError``)."""


class BalanceInvariantError(RuntimeError):
    """``check()`` found a negative balance or an asset that does not add up."""
