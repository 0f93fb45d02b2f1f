"""moto's server as the soak runs it: `python soak/moto_serve.py -H 127.0.0.1 -p PORT`.

Two changes to moto's DynamoDB, so that it behaves as the service does at a soak's scale:

- **Each request is atomic.** moto checks a condition, then writes, and rolls a transaction back by
  restoring copies of whole tables, so the requests of the soak's concurrent processes race inside
  moto itself ("dictionary changed size during iteration", answered 500). One lock around each
  DynamoDB request gives moto the service's atomicity, as the contract tests' moto does
  (tests/contract/conftest.py); the processes still send as many requests at once as they like.
- **A transaction costs what it writes.** moto deep-copies every table a TransactWriteItems names
  before it starts, to restore on cancellation: the payments table on every accepted ITN, so the
  soak slows down as the table grows (a few ITNs a second at 2,000, and gigabytes of copies).
  Here only the items the transaction names are copied, and those are what a cancellation restores.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

__all__ = ["install"]

_Saved = tuple[Table, DynamoType, DynamoType | None, Item | None]


def _one_request_at_a_time(call_action: Callable[[DynamoHandler], object]) -> Callable[[DynamoHandler], object]:
    lock = threading.Lock()

    def call(self: DynamoHandler) -> object:
        with lock:
            return call_action(self)

    return call


def _named_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[_Saved]:
    """Each item the transaction names, as it is now (None: absent); what moto's own validation
    would refuse is left for it to refuse."""
    saved: list[_Saved] = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.get_table(op["TableName"])
            attributes = op["Item"] if op_type == "Put" else op["Key"]
            hash_key = DynamoType(attributes[table.hash_key_attr])
            range_key = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
            current = table.get_item(hash_key, range_key)
        except Exception:  # noqa: BLE001, S112 - moto answers the malformed request itself
            continue
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
    return saved


def _restore(saved: list[_Saved]) -> None:
    for table, hash_key, range_key, item in reversed(saved):
        if item is None:
            table.delete_item(hash_key, range_key)
        elif range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item


def _copying_only_named_items(transact: Callable[..., None]) -> Callable[..., None]:
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = _named_items(self, transact_items)
        # moto's own whole-table copies become the tables themselves (its restore, a no-op); the
        # lock above means no other request deep-copies a table meanwhile.
        Table.__deepcopy__ = lambda table, memo: table  # type: ignore[attr-defined]
        try:
            transact(self, transact_items)
        except Exception:
            _restore(saved)
            raise
        finally:
            del Table.__deepcopy__  # type: ignore[attr-defined]

    return transact_write_items


def install() -> None:
    """Patches moto's DynamoDB in this process (see the module docstring)."""
    DynamoHandler.call_action = _one_request_at_a_time(DynamoHandler.call_action)  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _copying_only_named_items(  # type: ignore[method-assign]
        DynamoDBBackend.transact_write_items
    )


if __name__ == "__main__":
    from moto.server import main

    install()
    main(sys.argv[1:])
