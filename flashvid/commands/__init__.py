"""One module per subcommand of the ``flashvid`` command line, each with a ``run_<command>(cfg)`` handler that
calls the library; :mod:`flashvid.cli` dispatches to them (importing a handler's module only when its command
runs). ``config`` checks and builds the configs, ``runs`` holds what train, test and predict share.
"""
