"""Benchmarks (scripts, not unit tests).

``python -m bench.search_scale`` and ``python -m bench.index_build``; results in bench/results/.
"""
