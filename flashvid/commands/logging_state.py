"""Logging as a command found it. ``flashvid.cli.main`` runs each command inside :func:`logging_as_found`, so that a
caller who goes on in the same process (a notebook, a script, a test) keeps its own logging.

A command changes logging that outlives it: Hydra's job logging (``logging.config.dictConfig``) replaces the root
logger's handlers and level and closes every handler of the process, file handlers included;
:func:`~flashvid.cli.quiet_console` raises chatty loggers' levels and filters console handlers; and
:func:`~flashvid.commands.runs.route_console_logs` points console handlers (Lightning's own, made when Lightning is
imported, among them) at whatever ``sys.stderr`` is at each write. Left so, a later ``seed_everything``'s "Seed set
to N" line went to the caller's current stderr (another test's capture) instead of the stream its handler was
made with. Loggers' own filters are left alone: modules imported during the command add theirs on purpose
(:mod:`flashvid.trainer` drops Lightning's promotional tips for the rest of the process)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class _HandlerState:
    level: int
    filters: list[Any]
    formatter: logging.Formatter | None
    stream: Any = None
    file_open: bool = False


@dataclass
class _LoggerState:
    level: int
    propagate: bool
    disabled: bool
    handlers: list[logging.Handler] = field(default_factory=list)


def _loggers() -> dict[str, logging.Logger]:
    found = {name: lg for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    found[""] = logging.getLogger()
    return found


@contextmanager
def logging_as_found() -> Iterator[None]:
    """On exit: the levels, propagate flags and handlers of the loggers that existed on entry as they were, their
    handlers' levels, filters, formatters and streams too (a file handler closed meanwhile is reopened for
    appending); handlers that the command attached to those loggers are detached and closed."""
    loggers = {name: _LoggerState(lg.level, lg.propagate, lg.disabled, lg.handlers[:])
               for name, lg in _loggers().items()}
    handlers = {h: _HandlerState(h.level, h.filters[:], h.formatter, getattr(h, "stream", None),
                                 isinstance(h, logging.FileHandler) and h.stream is not None)
                for state in loggers.values() for h in state.handlers}
    disabled_below = logging.root.manager.disable
    try:
        yield
    finally:
        now = _loggers()
        for name, state in loggers.items():
            lg = now[name]  # logging never removes a logger
            for h in lg.handlers:
                if h not in handlers:
                    h.close()  # Hydra's: they hold this command's streams and run log
            lg.handlers[:] = state.handlers
            lg.setLevel(state.level)
            lg.propagate, lg.disabled = state.propagate, state.disabled
        for h, was in handlers.items():
            h.setLevel(was.level)
            h.filters[:] = was.filters
            h.setFormatter(was.formatter)
            if isinstance(h, logging.FileHandler):
                if was.file_open and h.stream is None:  # closed by dictConfig: "w" would truncate what it wrote
                    h.stream = open(h.baseFilename, "a", encoding=h.encoding, errors=h.errors)
            elif isinstance(h, logging.StreamHandler) and h.stream is not was.stream:
                h.setStream(was.stream)
        for lg in now.values():  # loggers made during the command too (Lightning imported by it)
            for h in lg.handlers:
                replaced = getattr(getattr(h, "stream", None), "replaced", None)  # runs._CurrentStream
                if isinstance(h, logging.StreamHandler) and replaced is not None:
                    h.setStream(replaced)
        logging.disable(disabled_below)
