"""The flags evaluation benchmark: `python bench/flags_bench.py` (see README.md)."""
