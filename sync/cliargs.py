"""The argument parser every command line of the project uses (the server's
``app.py`` and the client's): flags are never abbreviated (``--a`` must
not quietly mean ``--allow-mass-delete``), an unknown flag is named with
the closest known one, and every error is one line that says what to do.
Also the argparse types for durations and sizes (``24h``, ``256KiB``)."""

import argparse
import difflib

from . import units


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with ``allow_abbrev=False`` (subcommands
    get the same class) and one-line errors."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        self._refuse_unknown_flags(args)
        return super().parse_known_args(args, namespace)

    def _refuse_unknown_flags(self, args):
        import sys
        known = set(_option_strings(self))
        for arg in sys.argv[1:] if args is None else args:
            if arg == "--":
                return
            if not arg.startswith("--"):
                continue
            name = arg.split("=", 1)[0]
            if name not in known:
                starts = sorted(k for k in known if k.startswith(name) and len(name) > 2)
                close = starts or difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]}? options are spelled in full)" \
                    if close else ""
                self.error(f"unknown option {name}{hint}")


def _option_strings(parser):
    for action in parser._actions:
        yield from action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _option_strings(sub)


def parsers(parser):
    """``parser`` and every subcommand parser under it (for tests)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def duration(text):
    """An argparse type: seconds (a float) from '30s', '15m', '24h', '7d'."""
    try:
        return units.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_duration(text):
    value = duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0: use "
                                         f"{units.DURATION_FORMS}")
    return value


def size(text):
    """An argparse type: bytes (an int) from '256KiB', '64MiB' or plain bytes."""
    try:
        return units.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
