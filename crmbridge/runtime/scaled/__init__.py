"""The scaled runtime: crmbridge's sync functions as procrastinate tasks on PostgreSQL.

Any number of ``crmbridge worker`` processes, on any machines, share the work through
procrastinate's job table: a periodic ``dispatch`` queues a ``tick`` for each pipeline that is due,
and procrastinate's lock ``pipeline:<name>`` lets one worker run a pipeline at a time; large
backfills are split into ``backfill_chunk`` jobs; ``reap`` fails the jobs of workers that stopped
sending heartbeats. Nothing here imports procrastinate until the runtime is used, so the embedded
runtime needs none of it.
"""

from __future__ import annotations
