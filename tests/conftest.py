"""Shared test configuration.

HELPERS working in this tree right now: read /work/main/HELPERS.md first (no git state changes,
only your own files, final report by 15:40 UTC).
"""
