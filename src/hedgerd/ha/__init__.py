"""High availability: an active and a standby daemon over one PostgreSQL journal.

- `lease`: the leader lease per trading account (holder, epoch, expiry on the database
  server's clock), acquire/renew/release, the local self-fencing deadline, and the fenced
  intent write (`LeaderLease.guard`, run inside the journal's intent transaction).
- `lease_schema`: its tables.

What exists and what the daemon integration will add: docs/ha.md.
"""
