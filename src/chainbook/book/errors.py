"""The book's error type (kept out of the compiled modules: mypyc cannot compile a
subclass of ``RuntimeError``)."""


class BookInvariantError(RuntimeError):
    """``check()`` found the book inconsistent."""
