"""Price-time order books: the fast one the engine uses and a naive oracle for tests."""

from chainbook.book.book import OrderBook
from chainbook.book.order import Order

__all__ = ["Order", "OrderBook"]
