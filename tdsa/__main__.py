"""``python -m tdsa <command>``: see :mod:`tdsa.cli`."""

from tdsa.cli import main

raise SystemExit(main())
