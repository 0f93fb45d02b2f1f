"""TEST-ONLY: the AWS backend's side of TENANCY_FAULTS' `rate:` rules (tenancy.faults).

botocore's `before-call` event fires after a request is built and before it is sent; a handler
that returns a response there stands in for the service's answer, and botocore raises the real
`ClientError` subclass for it (an error status), as it would for the service's own. Nothing is
sent, and botocore's retries never see it, so each injection is exactly one failed call, mapped by
the adapters (adapters.aws._errors) as a real one would be. Imported only when a rule is set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ReadTimeoutError

from tenancy.faults import FaultRates, InjectedFault

if TYPE_CHECKING:
    import boto3

__all__ = ["install_fault_hooks"]

_Answer = tuple[AWSResponse, dict[str, Any]]
# botocore's stubs type every handler as returning None; a `before-call` handler's answer is used.
_Handler = Callable[..., Any]


def _error_answer(params: dict[str, Any], status: int, code: str, message: str) -> _Answer:
    """What botocore's parser makes of an error response: its status, code and message."""
    body = {"Error": {"Code": code, "Message": f"{message} (injected)"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return AWSResponse(str(params.get("url", "")), status, HTTPHeaders(), None), body


def _failing(rates: FaultRates, fault: InjectedFault, status: int, code: str, message: str, service: str) -> _Handler:
    def handler(params: dict[str, Any], model: Any, **_: Any) -> _Answer | None:
        if rates.roll(fault, f"{service}.{model.name}"):
            return _error_answer(params, status, code, message)
        return None  # send the request

    return handler


def _ses_handler(rates: FaultRates) -> _Handler:
    def handler(params: dict[str, Any], model: Any, **_: Any) -> _Answer | None:
        at = f"ses.{model.name}"
        if rates.roll(InjectedFault.MAIL_REFUSED, at):
            return _error_answer(params, 400, "Throttling", "Maximum sending rate exceeded.")
        if rates.roll(InjectedFault.MAIL_TIMEOUT, at):
            raise ReadTimeoutError(endpoint_url=str(params.get("url", "")))
        return None

    return handler


def install_fault_hooks(rates: FaultRates, session: boto3.Session) -> None:
    """Registers on `session` a handler for each fault `rates` names. Must run before the
    session's first client is built: a client copies the session's handlers when it is made."""
    events = session.events
    if InjectedFault.STORE_THROTTLED in rates:
        events.register(
            "before-call.dynamodb",
            _failing(rates, InjectedFault.STORE_THROTTLED, 400, "ProvisionedThroughputExceededException",
                     "The level of configured provisioned throughput for the table was exceeded.", "dynamodb"),
        )  # fmt: skip
    if InjectedFault.IDENTITY_THROTTLED in rates:
        events.register(
            "before-call.cognito-identity-provider",
            _failing(rates, InjectedFault.IDENTITY_THROTTLED, 400, "TooManyRequestsException",
                     "Too many requests.", "cognito-idp"),
        )  # fmt: skip
    if InjectedFault.MAIL_REFUSED in rates or InjectedFault.MAIL_TIMEOUT in rates:
        for operation in ("SendEmail", "SendRawEmail"):
            events.register(f"before-call.ses.{operation}", _ses_handler(rates))
    if InjectedFault.QUEUE_SEND_FAILED in rates:
        events.register(
            "before-call.sqs.SendMessage",
            _failing(rates, InjectedFault.QUEUE_SEND_FAILED, 503, "ServiceUnavailable",
                     "The request has failed due to a temporary failure of the server.", "sqs"),
        )  # fmt: skip
