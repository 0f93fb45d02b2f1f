"""soak/moto_serve.py: moto's DynamoDB, patched to copy only what a transaction names, still
cancels a transaction whole, and patched to give a query only its candidates, still answers every
query as moto does, page for page (each run in a process of its own: the patches are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "soak"
SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import boto3, moto_serve
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

moto_serve.install()
seen = {}
with mock_aws():
    db = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    db.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    db.create_table(TableName="r", KeySchema=[{"AttributeName": "h", "KeyType": "HASH"},
                                              {"AttributeName": "s", "KeyType": "RANGE"}],
                    AttributeDefinitions=[{"AttributeName": "h", "AttributeType": "S"},
                                          {"AttributeName": "s", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    db.put_item(TableName="t", Item={"k": {"S": "a"}, "v": {"N": "1"}})
    update_a = {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}}, "UpdateExpression": "SET v = :two",
                           "ExpressionAttributeValues": {":two": {"N": "2"}}}}
    put_x = {"Put": {"TableName": "r", "Item": {"h": {"S": "x"}, "s": {"S": "1"}}}}
    refused = {"Put": {"TableName": "t", "Item": {"k": {"S": "b"}}, "ConditionExpression": "attribute_exists(k)"}}
    try:
        db.transact_write_items(TransactItems=[update_a, put_x, refused])
    except ClientError as error:
        seen["cancelled"] = [reason.get("Code") for reason in error.response["CancellationReasons"]]
    def state():
        return {
            "a": db.get_item(TableName="t", Key={"k": {"S": "a"}})["Item"]["v"]["N"],
            "x": "Item" in db.get_item(TableName="r", Key={"h": {"S": "x"}, "s": {"S": "1"}}),
            "b": "Item" in db.get_item(TableName="t", Key={"k": {"S": "b"}}),
        }
    seen["after_cancel"] = state()
    db.transact_write_items(TransactItems=[update_a, put_x])
    seen["after_commit"] = state()
    seen["tables_copy_again"] = not hasattr(Table, "__deepcopy__")
print(json.dumps(seen))
"""


def test_a_cancelled_transaction_leaves_every_item_it_named_as_it_was() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(SOAK)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr

    seen = json.loads(result.stdout)
    assert seen["cancelled"] == ["None", "None", "ConditionalCheckFailed"]
    assert seen["after_cancel"] == {"a": "1", "x": False, "b": False}
    assert seen["after_commit"] == {"a": "2", "x": True, "b": False}
    assert seen["tables_copy_again"] is True


QUERIES = """
import json, sys
sys.path.insert(0, sys.argv[1])
import boto3, moto_serve
from moto import mock_aws

if sys.argv[2] == "patched":
    moto_serve.install()
answers = []
with mock_aws():
    db = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    db.create_table(
        TableName="p", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": kind}
                              for name, kind in (("pk", "S"), ("sk", "S"), ("txn", "S"), ("n", "N"))],
        GlobalSecondaryIndexes=[
            {"IndexName": "txn-index", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "txn", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]},
            {"IndexName": "n-index", "Projection": {"ProjectionType": "KEYS_ONLY"},
             "KeySchema": [{"AttributeName": "n", "KeyType": "HASH"}]},
        ],
    )
    for i in range(60):
        item = {"pk": {"S": f"p{i % 7}"}, "sk": {"S": f"E#{(i * 37) % 60:03d}"}, "n": {"N": str(i % 3)}}
        if i % 5:
            item["txn"] = {"S": f"T{i % 4}"}  # some items are not in the sparse index
        db.put_item(TableName="p", Item=item)
    queries = [
        {"KeyConditionExpression": "pk = :h", "ExpressionAttributeValues": {":h": {"S": "p3"}}},
        {"KeyConditionExpression": "pk = :h AND begins_with(sk, :s)",
         "ExpressionAttributeValues": {":h": {"S": "p2"}, ":s": {"S": "E#0"}}, "ScanIndexForward": False},
        {"KeyConditionExpression": "pk = :h", "ExpressionAttributeValues": {":h": {"S": "nobody"}}},
        {"IndexName": "txn-index", "KeyConditionExpression": "txn = :t",
         "ExpressionAttributeValues": {":t": {"S": "T1"}}, "Limit": 4},
        {"IndexName": "txn-index", "KeyConditionExpression": "txn = :t AND sk >= :s",
         "ExpressionAttributeValues": {":t": {"S": "T2"}, ":s": {"S": "E#020"}}},
        {"IndexName": "n-index", "KeyConditionExpression": "n = :n", "ExpressionAttributeValues": {":n": {"N": "1.0"}}},
    ]
    for query in queries:
        pages, start = [], None
        while True:  # every page, as a client pages
            request = {"TableName": "p", **query, **({"ExclusiveStartKey": start} if start else {})}
            answer = db.query(**request)
            pages.append([item["sk"]["S"] + "/" + item["pk"]["S"] for item in answer["Items"]])
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
        answers.append(pages)
print(json.dumps(answers))
"""


def test_queries_answer_what_unpatched_moto_answers_page_for_page() -> None:
    def run(mode: str) -> list[list[list[str]]]:
        result = subprocess.run(
            [sys.executable, "-c", QUERIES, str(SOAK), mode], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        answers: list[list[list[str]]] = json.loads(result.stdout)
        return answers

    patched, plain = run("patched"), run("plain")

    assert patched == plain
    assert [sum(map(len, pages)) for pages in plain] == [9, 9, 0, 12, 8, 20]  # every kind of query matched some
