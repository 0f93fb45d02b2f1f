"""Many single look-ups at once, for the batched look-ups no AWS API answers in one call (a GSI
query per value, an AdminGetUser per user): a few at a time in a small thread pool (boto3 clients
are safe to share between threads)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["WORKERS", "each"]

WORKERS = 8

_Key = TypeVar("_Key")
_Answer = TypeVar("_Answer")


def each(look_up: Callable[[_Key], _Answer], keys: Iterable[_Key]) -> dict[_Key, _Answer]:
    """`look_up(key)` for every distinct key, by key; the first error raised is raised."""
    distinct = list(dict.fromkeys(keys))
    if len(distinct) <= 1:
        return {key: look_up(key) for key in distinct}
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(distinct))) as pool:
        return dict(zip(distinct, pool.map(look_up, distinct), strict=True))
