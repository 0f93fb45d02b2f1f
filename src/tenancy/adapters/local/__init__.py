"""The embedded backend: one SQLite file in WAL mode, an embedded identity provider, an outbox mailer."""
