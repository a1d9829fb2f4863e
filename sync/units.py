"""Durations and sizes as people type them, for the server's settings and
every command-line flag of the server and the client: ``30s``, ``15m``,
``24h``, ``7d`` or plain seconds; ``256KiB``, ``64MiB``, ``1GiB`` or plain
bytes. Errors say which forms are accepted. ``shown_size`` writes a size
back in the same units."""

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB

SIZE_FORMS = "bytes, or a number with KiB, MiB, GiB or TiB (256KiB, 64MiB, 1GiB)"
DURATION_FORMS = "seconds, or a number with s, m, h or d (30s, 15m, 24h, 7d)"

_SIZE_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB,
               "mib": MIB, "g": GIB, "gb": GIB, "gib": GIB, "t": TIB, "tb": TIB, "tib": TIB}
_DURATION_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _split(text):
    s = str(text).strip().lower()
    number = s.rstrip("abcdefghijklmnopqrstuvwxyz ")
    return number.strip(), s[len(number):].strip()


def _number(number):
    value = float(number)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(number)
    return value


def parse_size(text):
    """Bytes (an int) from '256KiB', '64MiB', '1GiB', '512k' or a plain integer."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        number, unit = _split(text)
        try:
            value = int(_number(number) * _SIZE_UNITS[unit])
        except (KeyError, ValueError):
            raise ValueError(f"{str(text)!r} is not a size: use {SIZE_FORMS}") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative: use {SIZE_FORMS}")
    return value


def parse_duration(text):
    """Seconds (a float) from '30s', '15m', '24h', '7d', '1.5h' or plain seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        number, unit = _split(text)
        try:
            value = _number(number) * _DURATION_UNITS[unit]
        except (KeyError, ValueError):
            raise ValueError(f"{str(text)!r} is not a duration: use {DURATION_FORMS}") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative: use {DURATION_FORMS}")
    return value


def parse_seconds(text):
    """Whole seconds (an int) from any form ``parse_duration`` takes."""
    return int(parse_duration(text))


def shown_size(value):
    """A size in bytes as the command line shows it: ``512 B``, ``1.2 MiB``
    (``-`` for None)."""
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
