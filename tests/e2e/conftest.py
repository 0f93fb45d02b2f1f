"""End-to-end tests: their servers and helpers come from tests/servers.py (import from `servers`)."""
