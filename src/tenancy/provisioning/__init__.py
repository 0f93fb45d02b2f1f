"""Provisioning: the saga that turns a paid job into a working tenant, and the worker that runs it."""
