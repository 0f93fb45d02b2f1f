"""Adapters: the ports implemented on real components (local: SQLite and friends; aws: boto3)."""
