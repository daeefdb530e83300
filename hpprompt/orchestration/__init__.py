"""Experiment orchestration: the results grid (data sets x methods x seeds, `grid`), its shards over
processes or machines, the pin_init cell (`grid_init`) and the dry run's status (`grid_status`).

Top floor: calls the launchers' importable `run(...)` (`hpprompt.launch`) and the report; nothing
below imports it.
"""
