"""What may leave the machine: declared events, typed properties, and a safety net.

A tool declares its events and their properties:

    schema = footfall.Schema({
        "start": {"mode": footfall.Enum("standalone", "master", "worker"),
                  "headless": footfall.Bool(),
                  "users": footfall.Integer(buckets=(1, 10, 100, 1000))},
    })

Anything undeclared is dropped before it is sent. Integers are sent as buckets
("10-99"), never exact. Strings that look like an email, an IP address, a URL with
credentials, a file path, a token, a phone or card number are refused even when
declared (the safety net, footfall.safety). Without a
schema, only booleans, numbers and short identifier-like strings are sent.
The `command` event of the argparse, click and typer integrations is built in.
"""

from __future__ import annotations

import itertools

from footfall.patterns import compiled
from footfall.safety import MAX_CHECKED_CHARS as MAX_CHECKED_CHARS
from footfall.safety import NESTED_ENCODING, TOO_LONG
from footfall.safety import sensitive_kind as sensitive_kind
from footfall.safety import sensitive_kind_in as sensitive_kind_in

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

MAX_LIST_ITEMS = 32

_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$"


class PropType:
    """A declared property type: `clean` returns the value to send, or None to drop it."""

    accepts: tuple[type, ...] = (object,)  # the Python types it may take
    refused: str = "refused by its declared type"  # why a value of an accepted type was refused

    def refusal(self, value: object) -> str:
        """Why `clean` refused `value`, for FOOTFALL_DEBUG; never the value itself."""
        if not isinstance(value, self.accepts) or (isinstance(value, bool) and bool not in self.accepts):
            return f"wrong type: {type(value).__name__}, declared {type(self).__name__}"
        return self.refused

    def items_dropped(self, value: object, kept: object) -> str | None:
        """For a list: which of its items were left out, or None when none were."""
        return None

    def clean(self, value: object) -> object | None:
        raise NotImplementedError

    def describe(self) -> str:
        """What is sent, in words, for ANALYTICS.md."""
        raise NotImplementedError

    def spec(self) -> dict[str, object]:
        """The type for the collector's app schema (`footfall app schema`)."""
        raise NotImplementedError

    def in_notice(self, name: str) -> str:
        """The property as the built-in notice names it: its name, and what it never holds."""
        return name


class Enum(PropType):
    accepts = (str,)
    refused = "not one of the declared values"

    def __init__(self, *values: str) -> None:
        self.values = tuple(dict.fromkeys(values))  # declared order, for ANALYTICS.md
        self._allowed = frozenset(values)

    def clean(self, value: object) -> object | None:
        return value if isinstance(value, str) and value in self._allowed else None

    def describe(self) -> str:
        return "one of " + ", ".join(f"`{v}`" for v in self.values)

    def spec(self) -> dict[str, object]:
        return {"type": "enum", "values": list(self.values)}


class Bool(PropType):
    accepts = (bool,)

    def clean(self, value: object) -> object | None:
        return value if isinstance(value, bool) else None

    def describe(self) -> str:
        return "true or false"

    def spec(self) -> dict[str, object]:
        return {"type": "bool"}


class Integer(PropType):
    """Sent as the bucket it falls in, e.g. buckets (1, 10, 100) give "1-9", "10-99", "100+"."""

    accepts = (int,)

    def __init__(self, buckets: Sequence[int] = (1, 10, 100, 1000)) -> None:
        self.buckets = tuple(sorted(buckets))

    def clean(self, value: object) -> object | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        return bucket(value, self.buckets)

    def describe(self) -> str:
        edges = self.buckets
        labels = [bucket(edges[0] - 1, edges)] + [bucket(e, edges) for e in edges]
        return "a range, never the number: " + ", ".join(f"`{label}`" for label in labels)

    def spec(self) -> dict[str, object]:
        return {"type": "bucket"}

    def in_notice(self, name: str) -> str:
        return f"{name} (a range, never the number)"


class Version(PropType):
    accepts = (str,)
    refused = "not a version number such as 1.4.2"
    PATTERN = r"^\d+(\.\d+){0,2}([.-]?(a|b|rc|dev|post)\d*)?$"

    def clean(self, value: object) -> object | None:
        return value if isinstance(value, str) and compiled(self.PATTERN).match(value) else None

    def describe(self) -> str:
        return "a version number such as `1.4.2`"

    def spec(self) -> dict[str, object]:
        return {"type": "version"}


class CommandPath(PropType):
    """A command path such as "run" or "remote add": words, never arguments."""

    PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}( [a-z0-9][a-z0-9_-]{0,31}){0,5}$"
    accepts = (str,)
    refused = "not a command's words (at most six lowercase words)"

    def clean(self, value: object) -> object | None:
        return value if isinstance(value, str) and compiled(self.PATTERN).match(value) else None

    def describe(self) -> str:
        return "the command's name, such as `remote add`; never its arguments"

    def spec(self) -> dict[str, object]:
        return {"type": "command"}

    def in_notice(self, name: str) -> str:
        return f"{name} (its name, never its arguments)"


class OptionNames(PropType):
    """The names of the options used, such as ["--verbose", "-j"]; never their values."""

    PATTERN = r"^-{1,2}[A-Za-z0-9][A-Za-z0-9_-]{0,40}$"
    accepts = (list, tuple)

    def items_dropped(self, value: object, kept: object) -> str | None:
        return _items_dropped(
            value, kept, lambda v: isinstance(v, str) and bool(compiled(self.PATTERN).match(v)), "option names"
        )

    def clean(self, value: object) -> object | None:
        if not isinstance(value, (list, tuple)):
            return None
        kept = sorted({v for v in value if isinstance(v, str) and compiled(self.PATTERN).match(v)})
        return kept[:MAX_LIST_ITEMS]

    def describe(self) -> str:
        return "the names of the options given, such as `--verbose`; never their values"

    def spec(self) -> dict[str, object]:
        return {"type": "options"}

    def in_notice(self, name: str) -> str:
        return f"{name} (their names, never their values)"


class Identifier(PropType):
    """A short identifier-like string: an error type, a mode, a plugin name."""

    accepts = (str,)
    refused = "not a short identifier-like string (no spaces, at most 64 characters)"

    def clean(self, value: object) -> object | None:
        return value if isinstance(value, str) and compiled(_IDENTIFIER).match(value) else None

    def describe(self) -> str:
        return "a short name such as `ok` or an error's type, like `ValueError`; never a message"

    def spec(self) -> dict[str, object]:
        return {"type": "identifier"}


def bucket(value: int, edges: Sequence[int]) -> str:
    if value < edges[0]:
        return f"<{edges[0]}"
    for low, high in itertools.pairwise(edges):
        if value < high:
            return str(low) if high - low == 1 else f"{low}-{high - 1}"
    return f"{edges[-1]}+"


DURATION_BUCKETS = ("<1s", "1-10s", "10-60s", "1-10m", "10-60m", ">1h")


def duration_bucket(seconds: float) -> str:
    for limit, label in zip((1, 10, 60, 600, 3600), DURATION_BUCKETS, strict=False):
        if seconds < limit:
            return label
    return DURATION_BUCKETS[-1]


COMMAND_EVENT: dict[str, PropType] = {
    "command": CommandPath(),
    "options": OptionNames(),
    "duration": Enum(*DURATION_BUCKETS),
    "outcome": Identifier(),
}


def _clean_untyped(value: object) -> object | None:
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if compiled(_IDENTIFIER).match(value) else None
    if isinstance(value, (list, tuple)):
        kept = [v for v in value if isinstance(v, str) and compiled(_IDENTIFIER).match(v)]
        return kept[:MAX_LIST_ITEMS]
    return None


def _safety_net_kind(value: object) -> str | None:
    if isinstance(value, str):
        return sensitive_kind(value)
    if isinstance(value, (list, tuple)):
        return sensitive_kind_in([v for v in value if isinstance(v, str)])
    return None


def _safety_net_reason(kind: str) -> str:
    if kind == TOO_LONG:
        return f"safety net: too long (over {MAX_CHECKED_CHARS} characters)"
    if kind == NESTED_ENCODING:
        return "safety net: encoded too many times over"
    return f"safety net: looks like {'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _items_dropped(value: object, kept: object, fits: Callable[[object], bool], what: str) -> str | None:
    if not isinstance(value, (list, tuple)) or not isinstance(kept, list):
        return None
    refused = sum(1 for item in value if not fits(item))
    cut = len({item for item in value if fits(item) and isinstance(item, str)}) - len(kept)
    parts = [f"{refused} of {len(value)} items left out (not {what})"] if refused else []
    parts += [f"{cut} over the limit of {MAX_LIST_ITEMS} items"] if cut > 0 else []
    return "; ".join(parts) or None


# (property name, why it was dropped), as FOOTFALL_DEBUG prints them; never the value. A list
# property sent without some of its items is reported too, with a reason starting PARTLY_SENT.
Drops = list[tuple[str, str]]
PARTLY_SENT = "sent in part"


def _untyped_refusal(value: object) -> str:
    if isinstance(value, str):
        return "without a schema, only short identifier-like strings are sent (no spaces, at most 64 characters)"
    return (
        f"wrong type: {type(value).__name__}; without a schema, only booleans, numbers, short names"
        " and lists of short names are sent"
    )


def _check(key: str, kind: PropType | None, value: object, drops: Drops | None) -> object | None:
    """The value to send for one property, or None; with `drops`, says why it was dropped."""
    kept = kind.clean(value) if kind is not None else _clean_untyped(value)
    if kept is None:
        if drops is not None:
            # A refused string is also put to the safety net: the reason is then more telling.
            flagged = _safety_net_kind(value) if isinstance(value, str) else None
            if flagged is not None:
                drops.append((key, _safety_net_reason(flagged)))
            else:
                drops.append((key, kind.refusal(value) if kind is not None else _untyped_refusal(value)))
        return None
    flagged = _safety_net_kind(kept)
    if flagged is not None:
        if drops is not None:
            drops.append((key, _safety_net_reason(flagged)))
        return None
    if drops is not None:
        partly = (
            kind.items_dropped(value, kept)
            if kind is not None
            else _items_dropped(value, kept, _short_name, "short names")
        )
        if partly is not None:
            drops.append((key, f"{PARTLY_SENT}: {partly}"))
    return kept


def _short_name(value: object) -> bool:
    return isinstance(value, str) and bool(compiled(_IDENTIFIER).match(value))


class Schema:
    """The events a tool sends and the properties each may carry.

    The `command` event of the CLI integrations is declared too, unless `commands=False`: a
    tool that records no commands (a launcher, a plugin) says so, and then neither its
    notice nor its ANALYTICS.md lists them.
    """

    def __init__(self, events: Mapping[str, Mapping[str, PropType]], *, commands: bool = True) -> None:
        declared = {k: dict(v) for k, v in events.items()}
        self.events = {"command": COMMAND_EVENT, **declared} if commands else declared

    def notice_lines(self) -> list[str]:
        """One line per event for the built-in notice: the event and what it carries."""
        lines = []
        for name, props in sorted(self.events.items()):
            carried = ", ".join(kind.in_notice(prop) for prop, kind in sorted(props.items()))
            lines.append(f"{name}: {carried}" if carried else f"{name}, with no details")
        return lines

    def to_json(self) -> dict[str, object]:
        """The schema for the collector: `footfall app schema NAME --from FILE.py:OPTIONS`."""
        return {
            "events": {name: {prop: kind.spec() for prop, kind in props.items()} for name, props in self.events.items()}
        }

    def clean(self, name: str, props: Mapping[str, object], drops: Drops | None = None) -> dict[str, object] | None:
        """The properties to send, or None when the event itself is not declared.

        With `drops`, each property left out is added to it with the reason.
        """
        declared = self.events.get(name)
        if declared is None:
            return None
        cleaned: dict[str, object] = {}
        for key, value in props.items():
            kind = declared.get(key)
            if kind is None:
                if drops is not None:
                    drops.append((key, f"not declared for the event {name!r} in the schema"))
                continue
            kept = _check(key, kind, value, drops)
            if kept is not None:
                cleaned[key] = kept
        return cleaned


def clean_without_schema(name: str, props: Mapping[str, object], drops: Drops | None = None) -> dict[str, object]:
    if name == "command":
        return Schema({}).clean(name, props, drops) or {}
    cleaned: dict[str, object] = {}
    for key, value in props.items():
        kept = _check(key, None, value, drops)
        if kept is not None:
            cleaned[key] = kept
    return cleaned
