"""The experiments layer: what composes the library into evidence (grids, rules, summaries),
the benchmarks (``bench/``) and what the book's notebooks share (``book``).

Modules here may import the library (every module of ``tdsa`` outside ``experiments/``,
``commands/``, ``cli.py`` and ``__main__.py``) and each other; the library never imports them,
and they never import the commands (the layers: :mod:`tdsa`).
"""
