"""soak/moto_serve.py: moto's DynamoDB, patched to copy only what a transaction names, still
cancels a transaction whole; patched to give a query only its candidates, still answers every
query as moto does, page for page; and patched to send its data-plane answers as they are, still
answers each as its serializer does (each run in a process of its own: the patches are
process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SOAK = Path(__file__).resolve().parents[2] / "soak"


def answers_of(script: str, mode: str) -> Any:
    """What `script` prints (JSON) run in a process of its own, moto `patched` or `plain`."""
    result = subprocess.run(
        [sys.executable, "-c", script, str(SOAK), mode], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


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
    patched, plain = answers_of(QUERIES, "patched"), answers_of(QUERIES, "plain")

    assert patched == plain
    assert [sum(map(len, pages)) for pages in plain] == [9, 9, 0, 12, 8, 20]  # every kind of query matched some


ANSWERS = r"""
import base64, json, sys
sys.path.insert(0, sys.argv[1])
import boto3, moto_serve
from moto import mock_aws

if sys.argv[2] == "patched":
    moto_serve.install()

def plain(value):
    if isinstance(value, (bytes, bytearray)):
        return "b64:" + base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):  # a set's members have no order (DynamoDB's sets are unordered)
        return {key: sorted(plain(inner)) if key in ("SS", "NS", "BS") else plain(inner)
                for key, inner in value.items() if key != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [plain(inner) for inner in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(inner) for inner in value)
    return value

answers = []
with mock_aws():
    db = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    db.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "g-index", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}],
    )
    def item(number):
        return {
            "k": {"S": f"k{number}"}, "g": {"S": f"g{number % 2}"}, "n": {"N": str(number * 1.5)},
            "flag": {"BOOL": number % 2 == 0}, "none": {"NULL": True}, "blob": {"B": bytes([number, 255, 0])},
            "tags": {"SS": ["a", f"t{number}"]}, "scores": {"NS": ["1", "2.5"]},
            "list": {"L": [{"S": "x"}, {"N": "3"}, {"M": {"deep": {"BOOL": False}}}]},
            "map": {"M": {"status": {"S": "active"}, "limits": {"M": {"sites": {"N": "5"}}}, "empty": {"M": {}}}},
            "text": {"S": "tenants/ten_\u00e9\u00e8 \"quoted\" \\ line\nbreak"},
        }
    answers.append(db.put_item(TableName="t", Item=item(1), ReturnValues="ALL_OLD"))
    answers.append(db.put_item(TableName="t", Item=item(1), ReturnValues="ALL_OLD"))
    answers.append(db.put_item(TableName="t", Item=item(2), ReturnConsumedCapacity="TOTAL"))
    answers.append(db.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": item(n)}} for n in range(3, 8)]}))
    answers.append(db.get_item(TableName="t", Key={"k": {"S": "k1"}}, ConsistentRead=True))
    answers.append(db.get_item(TableName="t", Key={"k": {"S": "nobody"}}))
    answers.append(db.get_item(TableName="t", Key={"k": {"S": "k2"}}, ProjectionExpression="map.limits, tags"))
    answers.append(db.update_item(TableName="t", Key={"k": {"S": "k3"}}, UpdateExpression="ADD n :one SET flag = :t",
                                  ExpressionAttributeValues={":one": {"N": "1"}, ":t": {"BOOL": True}},
                                  ReturnValues="ALL_NEW"))
    answers.append(db.update_item(TableName="t", Key={"k": {"S": "k4"}}, UpdateExpression="REMOVE #l",
                                  ExpressionAttributeNames={"#l": "list"},
                                  ReturnValues="UPDATED_OLD"))
    answers.append(db.query(TableName="t", IndexName="g-index", KeyConditionExpression="g = :g",
                            ExpressionAttributeValues={":g": {"S": "g1"}}, Limit=2))
    answers.append(db.query(TableName="t", KeyConditionExpression="k = :k",
                            ExpressionAttributeValues={":k": {"S": "k5"}}, Select="COUNT"))
    answers.append(db.scan(TableName="t", Limit=3))
    answers.append(db.scan(TableName="t", FilterExpression="flag = :f",
                           ExpressionAttributeValues={":f": {"BOOL": True}}, ProjectionExpression="k, n"))
    keys = [{"k": {"S": "k6"}}, {"k": {"S": "k7"}}, {"k": {"S": "no"}}]
    answers.append(db.batch_get_item(RequestItems={"t": {"Keys": keys}}))
    answers.append(db.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": {"k": {"S": "k6"}}}}]))
    answers.append(db.transact_write_items(TransactItems=[{"Delete": {"TableName": "t", "Key": {"k": {"S": "k7"}}}}]))
    answers.append(db.delete_item(TableName="t", Key={"k": {"S": "k6"}}, ReturnValues="ALL_OLD"))
    answers.append(db.delete_item(TableName="t", Key={"k": {"S": "k6"}}, ReturnValues="ALL_OLD"))
print(json.dumps([plain(answer) for answer in answers], sort_keys=True))
"""


def test_data_plane_answers_sent_as_they_are_read_back_as_moto_s_serializer_sends_them() -> None:
    patched, plain = answers_of(ANSWERS, "patched"), answers_of(ANSWERS, "plain")

    assert patched == plain
    assert len(plain) == 18
    assert plain[4]["Item"]["blob"] == {"B": "b64:Af8A"}  # type: ignore[index]
    assert plain[11]["Count"] == 3  # type: ignore[index]


QUEUE_COUNTS = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import boto3, moto_serve
from botocore.exceptions import ClientError
from moto import mock_aws

if sys.argv[2] == "patched":
    moto_serve.install()
answers = []
with mock_aws():
    sqs = boto3.client("sqs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    for number in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{number}", DelaySeconds=60 if number < 3 else 0)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4)  # four in flight
    counts = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed"]
    answers.append(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=counts)["Attributes"])
    answers.append(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "FifoQueue"])
                   .get("Attributes", {}))
    everything = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    answers.append(sorted(everything))
    try:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchAttribute"])
    except ClientError as error:
        answers.append(error.response["Error"]["Code"])
print(json.dumps(answers))
"""


def test_a_queue_s_attributes_read_once_answer_what_moto_answers() -> None:
    patched, plain = answers_of(QUEUE_COUNTS, "patched"), answers_of(QUEUE_COUNTS, "plain")

    assert patched == plain
    assert plain[0] == {
        "ApproximateNumberOfMessages": "5",
        "ApproximateNumberOfMessagesNotVisible": "4",
        "ApproximateNumberOfMessagesDelayed": "3",
    }
    assert len(plain) == 4
