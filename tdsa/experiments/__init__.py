"""The experiments layer: what composes the library into evidence (grids, rules, summaries).

Modules here may import the library (``losses``, ``models``, ``data``, ``engine``, ``metrics``,
``viz``) and the other experiment modules; the library never imports them.
"""
