"""The service API's keys: made (the key shown once), listed, revoked, and checked on every
request. A key is checked against its name's stored digest in constant time; an unknown,
malformed or revoked key is refused alike, and no key is ever logged."""

from __future__ import annotations

import hmac

import structlog

from tenancy.domain.clock import format_timestamp
from tenancy.domain.service_keys import ServiceKey, check_name, hash_secret, new_secret, parse_key, render_key
from tenancy.errors import InvalidTokenError
from tenancy.ports import Clock, ServiceKeyStore

__all__ = ["ServiceKeys"]

log = structlog.get_logger(__name__)


class ServiceKeys:
    def __init__(self, store: ServiceKeyStore, pepper: bytes, clock: Clock) -> None:
        self._store = store
        self._pepper = pepper
        self._clock = clock

    def create(self, name: str) -> str:
        """A new key named `name`: returned once, only its digest kept. ValueError for a bad
        name; ItemAlreadyExistsError if the name is taken."""
        check_name(name)
        secret = new_secret()
        self._store.create(ServiceKey(name, hash_secret(secret, self._pepper), format_timestamp(self._clock.now())))
        log.info("service_key_created", name=name)
        return render_key(name, secret)

    def all(self) -> list[ServiceKey]:
        return self._store.all()

    def revoke(self, name: str) -> bool:
        """False if there is no such key, or it was revoked already."""
        revoked = self._store.revoke(name, format_timestamp(self._clock.now()))
        if revoked:
            log.info("service_key_revoked", name=name)
        return revoked

    def authenticate(self, presented: str) -> ServiceKey:
        """The active key `presented` is, or InvalidTokenError (401) saying only that it is not one."""
        parsed = parse_key(presented.strip())
        if parsed is None:
            raise InvalidTokenError("Invalid service key")
        name, secret = parsed
        key = self._store.get(name)
        digest = hash_secret(secret, self._pepper)
        # Compared even for an unknown name, so the answer takes as long either way.
        expected = key.key_hash if key is not None else "0" * len(digest)
        if not hmac.compare_digest(digest, expected) or key is None or not key.active:
            log.info("service_key_refused", name=name, known=key is not None)
            raise InvalidTokenError("Invalid service key")
        return key
