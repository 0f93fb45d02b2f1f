"""Tenancy: turns every genuine, completed PayFast payment into a working tenant, exactly once."""

__all__ = ["__version__"]

__version__ = "0.1.0"
