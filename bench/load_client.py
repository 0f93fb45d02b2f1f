"""The load generator for itn_throughput, run as its own process: an async httpx client with a
fixed number of requests in flight. Prints one JSON line: requests, seconds, statuses.

    python bench/load_client.py URL itn|healthz N CONCURRENCY RUN
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import httpx

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.payments.simulator import build_itn, encode_form

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def itn_bodies(count: int, run: str) -> list[bytes]:
    """Valid, signed, unique ITNs (built before the clock starts)."""
    return [
        encode_form(
            build_itn(
                transaction_id=f"TXN-{run}{number:07d}",
                email=f"{run.lower()}{number:07d}@example.com",
                plan="starter",
                amount="99.00",
                merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
                passphrase=PAYFAST_SANDBOX_PASSPHRASE,
                pf_payment_id=str(5_000_000_000 + number),
            )
        )
        for number in range(count)
    ]


async def load(url: str, kind: str, count: int, concurrency: int, run: str) -> dict[str, object]:
    bodies = itn_bodies(count, run) if kind == "itn" else []
    statuses: Counter[int] = Counter()
    next_index = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one_lane() -> None:
            for index in next_index:
                if kind == "itn":
                    response = await client.post("/payments/payfast/itn", content=bodies[index], headers=FORM)
                else:
                    response = await client.get("/healthz")
                statuses[response.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_lane() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"requests": count, "seconds": seconds, "statuses": {str(k): v for k, v in statuses.items()}}


def main() -> None:
    url, kind, count, concurrency, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    print(json.dumps(asyncio.run(load(url, kind, count, concurrency, run))))


if __name__ == "__main__":
    main()
