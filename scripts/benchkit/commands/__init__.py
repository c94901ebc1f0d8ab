"""One module per ``bench.py`` subcommand, found by name: each has a docstring (its help, first line the summary),
``add_arguments(parser)`` and ``run(args, record)``. Adding a subcommand is adding a module here."""
