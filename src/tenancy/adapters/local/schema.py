"""The embedded backend's tables: the data contract's fields, plus the queue, identity and outbox."""

from __future__ import annotations

__all__ = ["ADDED_COLUMNS", "SCHEMA"]

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS tenants (
        tenant_id TEXT PRIMARY KEY,
        owner_user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        plan TEXT NOT NULL,
        status TEXT NOT NULL,
        limits TEXT NOT NULL,
        usage TEXT NOT NULL,
        storage_prefix TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        invoice_number TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS tenants_by_transaction ON tenants (transaction_id)",
    "CREATE INDEX IF NOT EXISTS tenants_by_owner ON tenants (owner_user_id)",
    """CREATE TABLE IF NOT EXISTS users (
        user_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS users_by_email ON users (email)",
    """CREATE TABLE IF NOT EXISTS provisioning (
        transaction_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        invoice_number TEXT NOT NULL,
        email TEXT NOT NULL,
        plan TEXT NOT NULL,
        tenant_name TEXT NOT NULL,
        status TEXT NOT NULL,
        pf_payment_id TEXT,
        completed_steps TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        owner_user_id TEXT,
        last_error TEXT,
        review_reason TEXT,
        next_attempt_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        claim TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS provisioning_by_status ON provisioning (status, updated_at)",
    "CREATE INDEX IF NOT EXISTS provisioning_by_email ON provisioning (email)",
    """CREATE TABLE IF NOT EXISTS payments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at TEXT NOT NULL,
        source_ip TEXT NOT NULL,
        fields TEXT NOT NULL,
        verdict TEXT NOT NULL,
        reasons TEXT NOT NULL,
        pf_payment_id TEXT,
        transaction_id TEXT,
        payment_status TEXT,
        email TEXT,
        plan TEXT,
        amount_gross TEXT
    )""",
    # The dedupe guarantee (check 6): one accepted entry per pf_payment_id + status,
    # enforced by the database, so concurrent copies cannot both be accepted.
    """CREATE UNIQUE INDEX IF NOT EXISTS payments_accepted_once
        ON payments (pf_payment_id, payment_status) WHERE verdict = 'accepted'""",
    "CREATE INDEX IF NOT EXISTS payments_by_transaction ON payments (transaction_id)",
    "CREATE INDEX IF NOT EXISTS payments_by_email ON payments (email)",
    # /metrics and the alert rules count entries by verdict and read the window's rejections.
    "CREATE INDEX IF NOT EXISTS payments_by_verdict ON payments (verdict, received_at)",
    """CREATE TABLE IF NOT EXISTS queue_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        visible_at REAL NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT,
        sent_at TEXT NOT NULL,
        last_error TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (queue, visible_at)",
    """CREATE TABLE IF NOT EXISTS identity_users (
        username TEXT PRIMARY KEY,
        sub TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        attributes TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        password_expires_at REAL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS identity_sessions (
        session_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        purpose TEXT NOT NULL,
        expires_at REAL NOT NULL,
        used INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS identity_refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        auth_time REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS outbox (
        message_id TEXT PRIMARY KEY,
        to_address TEXT NOT NULL,
        sender TEXT NOT NULL,
        subject TEXT NOT NULL,
        text_body TEXT NOT NULL,
        html_body TEXT,
        status TEXT NOT NULL,
        error TEXT,
        tags TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_by_recipient ON outbox (to_address, created_at)",
    """CREATE TABLE IF NOT EXISTS repair_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        operator TEXT NOT NULL,
        transaction_id TEXT,
        tenant_id TEXT,
        email TEXT,
        finding TEXT NOT NULL,
        actions TEXT NOT NULL,
        before_state TEXT NOT NULL,
        after_state TEXT NOT NULL,
        outcome TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS repair_log_by_transaction ON repair_log (transaction_id)",
    "CREATE INDEX IF NOT EXISTS repair_log_by_tenant ON repair_log (tenant_id)",
    "CREATE INDEX IF NOT EXISTS provisioning_by_tenant ON provisioning (tenant_id)",
    """CREATE TABLE IF NOT EXISTS rate_counters (
        counter_key TEXT NOT NULL,
        window INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (counter_key, window)
    )""",
    # Sign-in sessions (browser cookies, API refresh-token families): only the secret's hash is kept.
    """CREATE TABLE IF NOT EXISTS sign_in_sessions (
        session_id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        kind TEXT NOT NULL,
        username TEXT NOT NULL,
        subject TEXT NOT NULL,
        tenant_id TEXT,
        roles TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        provider_refresh_token TEXT,
        revoked_at INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS sign_in_sessions_by_username ON sign_in_sessions (username)",
    "CREATE INDEX IF NOT EXISTS sign_in_sessions_by_expiry ON sign_in_sessions (expires_at)",
    # Per user: ID tokens issued before `not_before` (epoch seconds) no longer count.
    """CREATE TABLE IF NOT EXISTS token_revocations (
        username TEXT PRIMARY KEY,
        not_before INTEGER NOT NULL
    )""",
    # One live forgotten-password code per user (a new one replaces it); only its argon2 hash is kept.
    """CREATE TABLE IF NOT EXISTS identity_reset_codes (
        username TEXT PRIMARY KEY,
        code_hash TEXT NOT NULL,
        expires_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    )""",
)

# Columns added after a table was first created: (table, column, declaration). A database made by
# an older version gets them on open; CREATE TABLE above already has them for a new one.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (("provisioning", "claim", "TEXT"),)
