"""The commands of ``python -m tdsa``, one module per command (:data:`tdsa.cli.COMMANDS`).

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``: it parses the
arguments, calls the library and prints. ``gpu_check`` is the script of ``make gpu-check``
(``python -m tdsa.commands.gpu_check``).
"""
