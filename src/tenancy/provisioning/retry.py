"""The retry policy beside the orchestration: exponential backoff with jitter, and a limit."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 1.0
    factor: float = 2.0
    cap_seconds: float = 300.0
    max_attempts: int = 5
    random: random.Random = field(default_factory=random.Random, compare=False)

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay after the `attempt`-th failure (1-based): base * factor^(attempt-1), capped."""
        if self.base_seconds <= 0:
            return 0.0
        try:
            uncapped = self.base_seconds * self.factor ** max(attempt - 1, 0)
        except OverflowError:
            return self.cap_seconds
        return min(self.cap_seconds, uncapped)

    def delay(self, attempt: int) -> float:
        """The delay to wait: "equal jitter", half the ceiling plus a random part of the other
        half, so retries spread out but never come sooner than half the ceiling."""
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + self.random.uniform(0, ceiling / 2)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
