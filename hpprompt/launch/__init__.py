"""Importable logic behind the `experiments/` launchers (Colab users call these directly).

Floor 5: each launcher turns flags into a config, checks it (errors name the flag) and makes one
call into a method room (`agent`, `gradient`) or a task; training loops and task code live there.
Only `orchestration` imports launch.
"""
