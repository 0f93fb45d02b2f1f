"""soak/moto_serve.py: moto's DynamoDB, patched to copy only what a transaction names, still
cancels a transaction whole (run in a process of its own: the patches are process-wide)."""

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
