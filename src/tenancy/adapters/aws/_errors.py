"""Every vendor error mapped in one place to the project's error tree.

Throttling, 5xx, timeouts and connection failures are transient (the worker retries);
a failed condition is ItemAlreadyExistsError; anything else a caller did wrong is permanent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from tenancy.errors import ItemAlreadyExistsError, NotFoundError, PermanentError, TransientError

__all__ = ["CONDITION_FAILED", "THROTTLING_CODES", "aws_errors", "error_code"]

CONDITION_FAILED = "ConditionalCheckFailedException"
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "LimitExceededException",
        "InternalServerError",
        "InternalFailure",
        "InternalErrorException",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "RequestThrottled",
        "SlowDown",
    }
)
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "UserNotFoundException", "QueueDoesNotExist",
                              "AWS.SimpleQueueService.NonExistentQueue"})  # fmt: skip
_ALREADY_EXISTS_CODES = frozenset({CONDITION_FAILED, "UsernameExistsException"})


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Runs a boto3 call, raising the most specific project error for whatever it raises."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        if code in _ALREADY_EXISTS_CODES:
            raise ItemAlreadyExistsError(f"{doing}: {code}") from None
        if code in _NOT_FOUND_CODES:
            raise NotFoundError(f"{doing}: {code}") from None
        if code in THROTTLING_CODES or _status(error) >= 500:
            raise TransientError(f"{doing}: {code or _status(error)}") from None
        raise PermanentError(f"{doing}: {code}: {error.response.get('Error', {}).get('Message', '')}") from None
    except (EndpointConnectionError, BotoConnectionError, ConnectTimeoutError, ReadTimeoutError) as error:
        raise TransientError(f"{doing}: {type(error).__name__}") from None
    except BotoCoreError as error:
        raise PermanentError(f"{doing}: {type(error).__name__}") from None
