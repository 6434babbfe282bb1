"""``python -m tdsa <command>``: see :mod:`tdsa.cli`."""

import sys

try:
    from tdsa.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python imports the command line
    print("tdsa: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
