"""Paging through DynamoDB's Query and Scan, with its errors mapped to the project's: every page
of a query or a scan, and the count of what a query matches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from tenancy.adapters.aws._errors import aws_errors
from tenancy.adapters.aws._items import Item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef, ScanInputTypeDef

__all__ = ["count_matching", "query_pages", "scan_pages"]


def query_pages(client: DynamoDBClient, request: QueryInputTypeDef, doing: str) -> Iterator[list[Item]]:
    """Every page of a query (a page may be empty when a filter dropped all its items)."""
    while True:
        with aws_errors(doing):
            page = client.query(**request)
        yield page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def scan_pages(client: DynamoDBClient, request: ScanInputTypeDef, doing: str) -> Iterator[list[Item]]:
    while True:
        with aws_errors(doing):
            page = client.scan(**request)
        yield page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def count_matching(client: DynamoDBClient, request: QueryInputTypeDef, doing: str) -> int:
    """The items a query matches (after its filter), summed over its pages: `Select=COUNT` sends
    back no items. DynamoDB still reads (and charges for) every item the key condition matches."""
    request["Select"] = "COUNT"
    total = 0
    while True:
        with aws_errors(doing):
            page = client.query(**request)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
