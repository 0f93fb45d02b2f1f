"""Fast seeding: one purchase provisioned for real (ITN intake and the saga, in-process), then
cloned N-1 times, each clone with its own ids, by batched executemany.

The template's rows are read once; each text value that holds one of the template's ids becomes a
format string, so a clone is a few `str.format_map` calls. Rows go in batches of BATCH purchases,
one transaction per batch, so memory stays bounded whatever N (one batch's rows, and SQLite's page
cache at CACHE_KIB). For the bulk load the database runs without a rollback journal or fsync and
holds its lock throughout, and the secondary indexes of the cloned tables are dropped and built
again afterwards from the application's own schema (one sorted build instead of N random inserts);
the primary keys and UNIQUE constraints stay on throughout, so a clash still fails the seed. At the
end the file is back in WAL mode and ANALYZEd, as the application keeps it.

    .venv/bin/python bench/seed.py --tenants 1000000 [--home DIR]   (prints the time it took)
"""

from __future__ import annotations

import argparse
import re
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from common import BenchError, open_services, progress_bar, say

from tenancy.adapters.local.schema import SCHEMA
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import PaymentVerdict
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.runbook.evidence import Selector

PF_BASE = 7_770_000_000
BATCH = 5_000  # purchases per transaction (~6 rows and ~3 KiB each)
CACHE_KIB = 256 * 1024  # SQLite's page cache during the load: the random-order primary keys stay in it
# Each table's rows of the template purchase, found by the column named here.
TABLES = {
    "tenants": "transaction_id",
    "users": "email",
    "provisioning": "transaction_id",
    "payments": "transaction_id",
    "identity_users": "username",
    "outbox": "to_address",
    "findings": "transaction_id",  # the findings index: each clone is judged as its template was
}
_INDEX = re.compile(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+)\s+ON (\w+)", re.IGNORECASE)


def transaction_id(number: int) -> str:
    return f"TXN-BENCH{number:06d}"


def email(number: int) -> str:
    return f"bench{number:06d}@example.com"


@dataclass
class Seeded:
    home: Path
    tenants: int


def provision_template(home: Path, plan_name: str | None = None) -> dict[str, str]:
    """Purchase 0 (of `plan_name`, else the catalogue's first plan) through the real intake and
    saga; returns the ids its rows carry."""
    services = open_services(home)
    try:
        plan = services.plans.get(plan_name or services.plans.names()[0])
        fields = build_itn(
            transaction_id=transaction_id(0),
            email=email(0),
            plan=plan.name,
            amount=plan.price_zar,
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
            pf_payment_id=str(PF_BASE),
        )
        record = services.intake.receive(encode_form(fields), "127.0.0.1")
        if record.verdict is not PaymentVerdict.ACCEPTED:
            raise BenchError(f"the template ITN was {record.verdict.value}: {record.reasons}")
        services.worker.poll_once()
        diagnosis = services.runbook.diagnose(Selector(email=email(0)))
        if not diagnosis.healthy:
            raise BenchError(f"the template purchase is {diagnosis.finding.value}")
        identity = services.identity.get_user(email(0))
        assert identity is not None
        message_id = services.mailer.outbox(email(0), limit=1)[0].message_id
        return {"sub": identity.sub, "message_id": message_id, "tenant_id": tenant_id_for(transaction_id(0))}
    finally:
        services.close()


# What a clone's ids are, by name: the values substituted for the template's own.
Ids = dict[str, str]


def template_ids(template: dict[str, str]) -> dict[str, str]:
    """The template's value of each id a clone replaces, by the name of the replacement."""
    return {
        "upper": "BENCH000000",
        "lower": "bench000000",
        "tenant": template["tenant_id"],
        "sub": template["sub"],
        "message": template["message_id"],
        "pf": str(PF_BASE),
    }


def clone_ids(template: dict[str, str]) -> Callable[[int], Ids]:
    sub_prefix, message_prefix = template["sub"][:-12], template["message_id"][:-12]

    def ids(number: int) -> Ids:
        return {
            "upper": f"BENCH{number:06d}",
            "lower": f"bench{number:06d}",
            "tenant": tenant_id_for(transaction_id(number)),
            "sub": f"{sub_prefix}{number:012d}",
            "message": f"{message_prefix}{number:012d}",
            "pf": str(PF_BASE + number),
        }

    return ids


@dataclass(frozen=True)
class RowTemplate:
    """One template row: its fixed values, and (position, format string) for each value holding an id."""

    values: tuple[object, ...]
    varying: tuple[tuple[int, str], ...]

    def clone(self, ids: Ids) -> tuple[object, ...]:
        row = list(self.values)
        for position, pattern in self.varying:
            row[position] = pattern.format_map(ids)
        return tuple(row)


def row_template(values: tuple[object, ...], originals: dict[str, str]) -> RowTemplate:
    # One pass over each value, first id in `originals`' order wins, as a chain of replace() would.
    tokens = re.compile("|".join(re.escape(value) for value in originals.values()))
    name_of = {value: name for name, value in reversed(originals.items())}
    varying = []
    for position, value in enumerate(values):
        if not isinstance(value, str) or not tokens.search(value):
            continue
        parts, last = [], 0
        for match in tokens.finditer(value):
            parts.append(value[last : match.start()].replace("{", "{{").replace("}", "}}"))
            parts.append("{" + name_of[match.group()] + "}")
            last = match.end()
        parts.append(value[last:].replace("{", "{{").replace("}", "}}"))
        varying.append((position, "".join(parts)))
    return RowTemplate(values, tuple(varying))


def _secondary_indexes(tables: set[str]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the application's named indexes on these tables."""
    found = []
    for statement in SCHEMA:
        match = _INDEX.match(" ".join(statement.split()))
        if match and match.group(2) in tables:
            found.append((match.group(1), statement))
    return found


def _batches(first: int, end: int) -> Iterator[range]:
    for start in range(first, end, BATCH):
        yield range(start, min(start + BATCH, end))


def seed(home: Path, tenants: int, label: str = "", plan: str | None = None) -> Seeded:
    """`tenants` healthy, active tenants (each with payment, job, identity user, users record and
    welcome email) in a new TENANCY_HOME, all on `plan` (default: the catalogue's first)."""
    home.mkdir(parents=True, exist_ok=True)
    template = provision_template(home, plan)
    originals = template_ids(template)
    ids_for = clone_ids(template)
    connection = sqlite3.connect(home / "tenancy.db", isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 15000")
        # Bulk load: nobody else has the file open (the template's services are closed).
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute("PRAGMA locking_mode = EXCLUSIVE")
        connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        connection.execute("PRAGMA temp_store = MEMORY")
        inserts: list[tuple[str, list[RowTemplate]]] = []
        for table, key in TABLES.items():
            columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})") if row[1] != "id"]
            names = ", ".join(columns)
            template_value = email(0) if key in {"email", "username", "to_address"} else transaction_id(0)
            rows = connection.execute(f"SELECT {names} FROM {table} WHERE {key} = ?", (template_value,)).fetchall()  # noqa: S608
            if not rows:
                raise BenchError(f"the template purchase has no {table} row")
            placeholders = ", ".join("?" for _ in columns)
            insert = f"INSERT INTO {table} ({names}) VALUES ({placeholders})"  # noqa: S608
            inserts.append((insert, [row_template(row, originals) for row in rows]))
        indexes = _secondary_indexes(set(TABLES))
        for name, _ in indexes:
            connection.execute(f"DROP INDEX IF EXISTS {name}")
        with progress_bar(f"seeding {tenants} tenants{label}", max(tenants - 1, 1)) as bar:
            for numbers in _batches(1, tenants):
                clones = [ids_for(number) for number in numbers]
                connection.execute("BEGIN")
                for sql, templates in inserts:
                    connection.executemany(sql, [row.clone(ids) for ids in clones for row in templates])
                connection.execute("COMMIT")
                bar.advance(len(numbers))
        for _, statement in indexes:
            connection.execute(statement)
        connection.execute("ANALYZE")
        connection.execute("PRAGMA locking_mode = NORMAL")
        connection.execute("PRAGMA journal_mode = WAL")
    finally:
        connection.close()
    return Seeded(home, tenants)


def break_identity_users(home: Path, tenants: int, every: int = 100) -> list[int]:
    """RB-001 4.2 for every `every`-th tenant (1%): the identity user is deleted. Returns their numbers."""
    broken = list(range(every // 2, tenants, every)) or [tenants // 2]
    connection = sqlite3.connect(home / "tenancy.db", isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("DELETE FROM identity_users WHERE username = ?", [(email(n),) for n in broken])
        connection.execute("COMMIT")
    finally:
        connection.close()
    return broken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seed a TENANCY_HOME with N healthy tenants and time it.")
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--home", type=Path, help="a new directory (default: a temporary one, kept)")
    arguments = parser.parse_args(argv)
    home = arguments.home or Path(tempfile.mkdtemp(prefix="tenancy-seed-")) / "home"
    started = time.monotonic()
    seed(home, arguments.tenants)
    seconds = time.monotonic() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mib = (home / "tenancy.db").stat().st_size / 2**20
    say(f"seeded {arguments.tenants} tenants in {seconds:.1f} s (peak RSS {peak_mib:.0f} MiB; {size_mib:.0f} MiB file)")
    say(f"home: {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
