"""Execution: order state machine, client ids, journal, executor, reconciliation."""
