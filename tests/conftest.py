"""Shared test configuration (each domain's tests keep their helpers beside them)."""
