"""Accounts: customer login (with RB-001's symptoms) and reading one's own tenant."""
