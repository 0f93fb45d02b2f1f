"""moto's server as the soak runs it: `python soak/moto_serve.py -H 127.0.0.1 -p PORT`.

Changes to moto's DynamoDB and SQS, so that it behaves as the service does at a soak's scale:

- **Each request is atomic.** moto checks a condition, then writes, and rolls a transaction back by
  restoring copies of whole tables, so the requests of the soak's concurrent processes race inside
  moto itself ("dictionary changed size during iteration", answered 500). One lock around each
  DynamoDB request gives moto the service's atomicity, as the contract tests' moto does
  (tests/contract/conftest.py); the processes still send as many requests at once as they like.
- **A query costs what it can match.** moto sorts the whole table before every query, then
  compares each item's key through its slow DynamoType, so each ledger look-up by transaction id,
  the commonest query of an ITN, grew with the table (40 ms at a few thousand payments). Here a
  query is given only its candidates (its partition, or the items whose string index key is
  equal), unsorted: moto still filters and sorts them, so what it returns is unchanged.
- **A receive costs what it receives.** For each message it receives, moto's SQS checks the
  retention period through GetQueueAttributes, which counts every message in the queue, three
  times. Here the period is read from the queue itself.
- **An answer costs what it holds.** moto builds DynamoDB's data-plane answers (items, keys,
  counts) already in the wire's JSON shape, then walks them through its generic serializer, which
  looks up every attribute of every item in the operation's model: a third of moto's time in a
  soak, most of it for scans. Here those answers are sent as they are (what the serializer sends
  for them; a test compares the two answer for answer).
- **A queue's counts cost one count.** Asked for some of a queue's attributes, moto computes all
  of them (each count a pass over every message) three times per name asked for: `depth`'s three
  counts were some thirty passes over a backlog of thousands. Here they are computed once.
- **A transaction costs what it writes.** moto deep-copies every table a TransactWriteItems names
  before it starts, to restore on cancellation: the payments table on every accepted ITN, so the
  soak slows down as the table grows (a few ITNs a second at 2,000, and gigabytes of copies).
  Here only the items the transaction names are copied, and those are what a cancellation restores.
"""

from __future__ import annotations

import base64
import copy
import inspect
import json
import sys
import threading
from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.sqs.models import Message, SQSBackend

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


def _items_in_any_order(table: Table) -> list[Item]:
    """Every item of `table`, unsorted: what moto's `all_items` gives, without its sort."""
    if table.range_key_attr:
        return [item for hash_set in table.items.values() for item in hash_set.values()]
    return list(table.items.values())  # type: ignore[arg-type]


def _candidates(table: Table, query: inspect.BoundArguments) -> list[Item]:
    """The items a query can match, a superset of what moto's own filter keeps: a table query's
    partition, or an index query's items whose string hash keys are equal (compared as stored;
    moto compares them again, through its slower DynamoType)."""
    arguments = query.arguments
    hash_key = arguments.get("hash_key")
    if not arguments.get("index_name") and hash_key is not None:
        held = table.items.get(hash_key)
        if held is None:
            return []
        return list(held.values()) if table.range_key_attr else [held]  # type: ignore[union-attr, list-item]
    items = _items_in_any_order(table)
    for name, expected in arguments.get("hash_key_conditions") or ():
        if expected.type == "S":
            items = [
                item
                for item in items
                if (value := item.attrs.get(name)) is not None and value.type == "S" and value.value == expected.value
            ]
    return items


def _filtering_only_candidates(query: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(query)

    def table_query(self: Table, *args: Any, **kwargs: Any) -> Any:
        # A query filters the items `all_items` gives and sorts what matched itself, so giving it
        # only its candidates, in any order, changes nothing but its cost. The per-request lock
        # means no other request sees this table meanwhile (a scan pages by `all_items`' order,
        # and keeps it).
        candidates = _candidates(self, signature.bind(self, *args, **kwargs))
        self.all_items = lambda: candidates  # type: ignore[method-assign]
        try:
            return query(self, *args, **kwargs)
        finally:
            del self.all_items

    return table_query


def _retention_read_directly(self: SQSBackend, queue_name: str, message: Message) -> bool:
    # moto reads the retention period through GetQueueAttributes, which counts every message of
    # the queue (visible, in flight, delayed) three times: for each message it receives.
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]


# The actions whose answer moto builds as the wire's JSON already (its DynamoResult of items).
_AS_IS = frozenset(
    {
        "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
        "BatchGetItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems",
    }
)  # fmt: skip


def _blob(value: object) -> str:
    """A binary attribute's value (moto keeps bytes) as the wire carries it: base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _serialized_as_is(serialized: Callable[..., Any]) -> Callable[..., Any]:
    def dynamodb_serialized(self: DynamoHandler, action_result: Any) -> Any:
        result = action_result.result
        if isinstance(result, dict) and self._get_action() in _AS_IS:
            headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers, "status": 200}
            return 200, headers, json.dumps(result, default=_blob)
        return serialized(self, action_result)  # errors, and every other action: moto's own

    return dynamodb_serialized


def _attributes_counted_once(get_queue_attributes: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def read(self: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        if not attribute_names or "All" in attribute_names:
            return get_queue_attributes(self, queue_name, attribute_names)
        everything = get_queue_attributes(self, queue_name, ["All"])
        if any(name not in everything for name in attribute_names):
            return get_queue_attributes(self, queue_name, attribute_names)  # moto's answer (or error) for those
        return {name: everything[name] for name in attribute_names if everything[name] is not None}

    return read


def install() -> None:
    """Patches moto's DynamoDB and SQS in this process (see the module docstring)."""
    SQSBackend.is_message_valid_based_on_retention_period = _retention_read_directly  # type: ignore[method-assign]
    SQSBackend.get_queue_attributes = _attributes_counted_once(SQSBackend.get_queue_attributes)  # type: ignore[method-assign]
    DynamoHandler.call_action = _one_request_at_a_time(DynamoHandler.call_action)  # type: ignore[method-assign]
    DynamoHandler.serialized = _serialized_as_is(DynamoHandler.serialized)  # type: ignore[method-assign]
    Table.query = _filtering_only_candidates(Table.query)  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _copying_only_named_items(  # type: ignore[method-assign]
        DynamoDBBackend.transact_write_items
    )


if __name__ == "__main__":
    from moto.server import main

    install()
    main(sys.argv[1:])
