"""Importable logic behind the `experiments/` launchers (Colab users call these directly)."""
