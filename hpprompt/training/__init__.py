"""Run bookkeeping: run directories (one process each: run.lock), metrics and prompt logs,
Orbax checkpoints, progress lines, the device mesh (`sharding`), safe file writes.

Floor 0: imports no other room.
"""
