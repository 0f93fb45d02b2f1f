"""Entitlements and usage for the Site Builder application: what a tenant's plan allows, what it
has used (recorded atomically, once per idempotency key), the owner's warnings near a limit, and
the service keys the application calls with."""
