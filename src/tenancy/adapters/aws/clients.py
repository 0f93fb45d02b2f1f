"""boto3 clients built on their first use, not at start.

A client costs tens of milliseconds to build (botocore loads its service model), and each Lambda
function uses only some of the AWS backend's seven: the schedules never touch Cognito's or CloudWatch
Logs', the ITN function neither SES's nor EventBridge's. Built lazily, a cold start pays only for the
clients its first invocation calls. One lock per session: boto3's sessions are not thread-safe, and
the served app runs its handlers in a thread pool.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

__all__ = ["LazyClients"]


class _LazyClient:
    """Stands in for a boto3 client: every attribute is the real client's, built on the first one."""

    def __init__(self, clients: LazyClients, service: str) -> None:
        self._clients = clients
        self._service = service
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        # Only reached for what this object lacks: every client attribute and method.
        client = self._client
        if client is None:
            client = self._client = self._clients.build(self._service)
        return getattr(client, name)


class LazyClients:
    """The clients of one boto3 session and config, each built on its first use, once."""

    def __init__(self, session: boto3.Session, config: Config) -> None:
        self._session = session
        self._config = config
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """A client of `service` (for the adapter that takes its typed client)."""
        return _LazyClient(self, service)

    def build(self, service: str) -> Any:
        with self._lock:
            if service not in self._built:
                self._built[service] = self._session.client(service, config=self._config)  # type: ignore[call-overload]
            return self._built[service]

    @property
    def built(self) -> tuple[str, ...]:
        """The services whose clients exist so far, in the order they were built."""
        return tuple(self._built)
