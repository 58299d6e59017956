"""Whether this run may send, decided once, with every layer visible.

The layers, highest first:

    1. the tool's own variable  opt_out_env (truthy = off) or enable_env (falsy = off)
    2. DO_NOT_TRACK             truthy = off, for every tool at once
    3. run suppression          FOOTFALL_SUPPRESS=1, set for child processes
    4. CI policy                ci="suppress" and a CI provider is detected
    5. saved setting            `analytics on|off`, kept in the state file
    6. default                  on for consent="opt-out", off for consent="opt-in"

Any layer can turn analytics off, and "off" wins over an "on" from a higher layer:
no variable can force sending past a user's DO_NOT_TRACK. A value that is neither
truthy nor falsy counts as "off" and is reported with FOOTFALL_DEBUG=1.
"""

from __future__ import annotations

import os
import sys

from footfall.errors import debug

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from footfall.state import ToolState

TRUTHY = frozenset({"1", "true", "yes", "on", "y"})
FALSY = frozenset({"0", "false", "no", "off", "n", ""})
SUPPRESS_ENV = "FOOTFALL_SUPPRESS"


class Decision:
    """The outcome, with the layer that decided and a sentence saying why."""

    __slots__ = ("enabled", "layer", "reason")

    def __init__(self, enabled: bool, layer: str, reason: str) -> None:
        self.enabled = enabled
        self.layer = layer
        self.reason = reason

    def __repr__(self) -> str:
        return f"Decision(enabled={self.enabled}, layer={self.layer!r}, reason={self.reason!r})"


def parse_flag(name: str, value: str) -> bool | None:
    """True or False for a clear value; None (and a debug line) for garbage."""
    text = value.strip().lower()
    if text in TRUTHY:
        return True
    if text in FALSY:
        return False
    debug(f"{name}={value!r} is not a yes/no value; treating it as 'analytics off'")
    return None


def decide(
    environ: Mapping[str, str],
    state: ToolState,
    *,
    opt_out_env: str | None,
    enable_env: str | None,
    consent: str,
    ci_policy: str,
    ci_provider: str,
) -> Decision:
    votes: list[Decision] = []  # each layer's opinion, highest first

    if opt_out_env and opt_out_env in environ:
        flag = parse_flag(opt_out_env, environ[opt_out_env])
        if flag is not False:
            votes.append(Decision(False, "tool variable", f"{opt_out_env}={environ[opt_out_env]}"))
    if enable_env and enable_env in environ:
        flag = parse_flag(enable_env, environ[enable_env])
        votes.append(Decision(bool(flag), "tool variable", f"{enable_env}={environ[enable_env]}"))
    if "DO_NOT_TRACK" in environ:
        flag = parse_flag("DO_NOT_TRACK", environ["DO_NOT_TRACK"])
        if flag is not False:
            votes.append(Decision(False, "DO_NOT_TRACK", f"DO_NOT_TRACK={environ['DO_NOT_TRACK']}"))
    if environ.get(SUPPRESS_ENV):
        votes.append(Decision(False, "run suppression", f"{SUPPRESS_ENV} is set by a parent process"))
    if ci_policy == "suppress" and ci_provider:
        votes.append(Decision(False, "CI policy", f"running in CI ({ci_provider}) and the tool suppresses CI runs"))
    saved = state.enabled
    if saved is not None:
        verb = "on" if saved else "off"
        votes.append(Decision(saved, "saved setting", f"turned {verb} with the analytics command"))

    for vote in votes:
        if not vote.enabled:
            return vote
    if votes:
        return votes[0]
    if consent == "opt-in":
        return Decision(False, "default", "this tool asks before sending anything")
    return Decision(True, "default", "on unless you opt out")


def is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except Exception:
        return False


def print_notice(text: str) -> bool:
    """Write the notice to stderr; True when it was written."""
    try:
        sys.stderr.write(text.rstrip("\n") + "\n")
        sys.stderr.flush()
    except Exception:
        return False
    return True


def ask(question: str) -> bool | None:
    """Ask on a terminal; None when there is no terminal or no clear answer."""
    if not (is_tty(sys.stdin) and is_tty(sys.stderr)):
        return None
    try:
        sys.stderr.write(question)
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
    except Exception:
        return None
    return answer in ("y", "yes")


NOTICE_WIDTH = 88  # characters per line
UNTYPED_EVENTS = (
    "the commands and option names used (never their values), durations and outcomes, and"
    " events with numbers, true/false values and short names (never free text)"
)


def default_notice(app: str, events: list[str] | None, off_switches: list[str], link: str | None) -> str:
    """The built-in notice: what `app` sends, from its schema (`events`, one line per event;
    None without a schema), and every way to turn it off, the tool's own first."""
    import textwrap

    intro = f"{app} collects anonymous usage statistics to help its maintainers decide what to work on."
    if events is None:
        lines = textwrap.wrap(f"{intro} It sends {UNTYPED_EVENTS}.", NOTICE_WIDTH)
    else:
        lines = textwrap.wrap(f"{intro} It sends these events:", NOTICE_WIDTH)
        for event in events:
            lines += textwrap.wrap(event, NOTICE_WIDTH, initial_indent="  - ", subsequent_indent="    ")
    lines += textwrap.wrap(
        "With each: the version, OS and Python version, and whether it runs in CI or a container."
        " Never names, paths, values typed in or IP addresses.",
        NOTICE_WIDTH,
    )
    switches = [*off_switches, "DO_NOT_TRACK=1"]
    ways = ", ".join(switches[:-1]) + " or " + switches[-1] if len(switches) > 1 else switches[0]
    lines += textwrap.wrap(f"Turn it off with {ways}.", NOTICE_WIDTH)
    if link:
        lines.append(f"Details: {link}")
    return "\n".join(lines)


def child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment in which child processes of this tool send nothing."""
    env = dict(os.environ if environ is None else environ)
    env[SUPPRESS_ENV] = "1"
    return env
