"""The client a tool holds: `footfall.init(...)` returns one, `track()` records events.

Whether this run sends is decided once, in `init` (see footfall.consent). A client
that may not send keeps a null recorder, so the host never needs `if enabled:`;
it still answers `status()`, `set_enabled()`, `preview()` and `forget()`, which
the ready-made `analytics` commands use.
"""

from __future__ import annotations

import os
import sys
import time

from footfall import consent
from footfall.batch import BatchBuilder
from footfall.context import detect_ci
from footfall.errors import debug, debug_enabled, no_throw
from footfall.patterns import compiled
from footfall.state import ToolState, config_dir, new_install_id
from footfall.transport import DebugTransport, HttpTransport, NoTransport, Transport, refusal_sentence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from footfall.batch import BeforeSend
    from footfall.delivery import Recorder
    from footfall.schema import Schema
    from footfall.spool import Spool

DEFAULT_QUEUE_SIZE = 1000  # events waiting for the worker; more are dropped and counted
DEFAULT_EXIT_TIMEOUT_S = 0.25  # the most a process exit may wait for delivery
FORGET_WAIT_S = 2.0  # the most `forget` waits for a batch in flight before asking the collector
APP_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
COMMAND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}( [A-Za-z0-9][A-Za-z0-9._-]{0,63}){0,4}$"
CHOICES = {
    "notice": ("once", "every-run"),
    "consent": ("opt-out", "opt-in"),
    "identity": ("random", "none"),
    "ci": ("tag", "send", "suppress"),
}


class NullClient:
    """Records nothing: what `init` returns when its own arguments are wrong."""

    enabled = False
    decision = consent.Decision(False, "error", "footfall.init was called with bad options")

    def track(self, name: str, **props: Any) -> None:
        return None

    def flush(self, timeout: float = 2.0) -> bool:
        return True


class Client:
    def __init__(
        self,
        builder: BatchBuilder,
        transport: Transport,
        state: ToolState,
        decision: consent.Decision,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S,
    ) -> None:
        self.app = builder.app
        self.decision = decision
        self._builder = builder
        self._transport = transport
        self._state = state
        self._recorder: Recorder | None = None
        self._muted = False  # set by `mute`: nothing more is recorded in this run
        if decision.enabled:  # threads and queues are imported only by a client that sends
            from footfall.delivery import Recorder
            from footfall.spool import Spool

            spool = Spool(state.spool_dir)
            self._recorder = Recorder(builder, transport, spool, queue_size, exit_timeout, state)

    @property
    def enabled(self) -> bool:
        return self._recorder is not None

    @property
    def state_file(self) -> str:
        return self._state.path

    @property
    def collector_refusal(self) -> str | None:
        """The collector's latest final refusal of a batch (`unknown_app`...), kept until it takes one."""
        return self._state.collector_refusal()

    @no_throw()
    def track(self, name: str, **props: Any) -> None:
        if self._recorder is not None and not self._muted:
            self._recorder.track(name, props)

    def mute(self) -> None:
        """Record nothing more in this run: the `analytics` command is managing analytics, not
        using the tool, so neither it nor anything after it in the same run is recorded."""
        self._muted = True

    @no_throw(default=False)
    def flush(self, timeout: float = 2.0) -> bool:
        """Wait up to `timeout` seconds; True when every tracked event was delivered."""
        return True if self._recorder is None else self._recorder.flush(timeout)

    # -- what the `analytics` commands use -------------------------------------------

    @no_throw(default=False)
    def set_enabled(self, on: bool) -> bool:
        """Save the user's choice; True if saved.

        Turning off also stops this run: what is queued is dropped and nothing more is sent,
        spooled or replayed, at exit neither. It deletes the install id, with every spooled
        batch that carries it, and from then on nothing makes a new one (see ToolState).
        """
        if on:
            return self._state.update(enabled=True)
        self.mute()
        if self._recorder is not None:
            self._recorder.stop()  # first: the worker builds no batch while the id is deleted
        old = self._state.install_id(create=False)
        saved = self._state.update(enabled=False, install_id=None)
        self._builder.new_identity()  # a context built with the old id is not reused, not even by `preview`
        if old is not None:
            from footfall.spool import Spool

            Spool(self._state.spool_dir).purge_install(old)
        return saved

    def preview(self, name: str = "command", **props: Any) -> dict[str, Any] | None:
        """The exact batch this event would be sent as, now."""
        return self._builder.build([(name, time.time(), props)])

    @no_throw(default="failed")
    def forget(self) -> str:
        """Forget this install: here at once, on the collector as soon as it can be reached.

        Written ahead, in this order: the forget request for the old id is saved in the spool;
        only then does this process take a new random id (none when the user turned analytics
        off) and a new run id, drop the batches that still carry the old id (in memory and in
        the spool) and ask the collector (`POST /v1/forget`); the saved request is deleted once
        the collector took it. So a forget the collector has not taken is never lost.

        Returns "sent" when the collector took the request, "queued" when it waits in the
        spool for the next delivery (or the next forget), "refused" when the collector refused
        it for good, "none" when there was no id, and "failed" when it could be neither saved
        nor sent: then the id is kept, so that trying again still names it.
        """
        from footfall.delivery import post_forget
        from footfall.spool import Spool

        spool = Spool(self._state.spool_dir)
        old = self._state.install_id(create=False)
        if old is None:
            self._send_waiting_forgets(spool)
            return "none"
        request = {"app": self.app, "install": old}
        held = spool.hold_forget(request)
        if held is None:
            return self._forget_unsaved(spool, old, request)
        self._take_new_identity()
        idle = self._recorder.forget(old, FORGET_WAIT_S) if self._recorder is not None else True
        spool.purge_install(old)
        if idle and self._send_waiting_forgets(spool, held):
            outcome = post_forget(self._transport, request)
            if outcome != "retry":
                spool.discard(held)
                return outcome
        # Not now: the worker was still sending, or the collector is out of reach.
        spool.release(held)
        return "queued"

    def _forget_unsaved(self, spool: Spool, old: str, request: dict[str, str]) -> str:
        """The request cannot be saved (full or read-only disk, too many waiting): the id
        changes only if the collector takes the request now. Otherwise nothing changes and
        "failed" says so; a batch with the old id dropped while waiting is the only loss."""
        from footfall.delivery import post_forget

        idle = self._recorder.forget(old, FORGET_WAIT_S) if self._recorder is not None else True
        outcome = "retry"
        if idle and self._send_waiting_forgets(spool):
            outcome = post_forget(self._transport, request)
        if outcome == "retry":
            if self._recorder is not None:
                self._recorder.unforget(old)
            return "failed"
        self._take_new_identity()
        spool.purge_install(old)
        return outcome

    def _take_new_identity(self) -> None:
        """A new install id (none when the user turned analytics off) and a new run id."""
        self._state.update(install_id=new_install_id() if self._state.may_make_new_id() else None)
        self._builder.new_identity()

    def _send_waiting_forgets(self, spool: Spool, held: str | None = None) -> bool:
        """Send forget requests an earlier run could not; True when none but `held` is left waiting."""
        from footfall.delivery import post_forget

        spool.replay_forgets(lambda request: post_forget(self._transport, request) != "retry")
        return not [path for path in spool.pending_forgets() if path != held]


def endpoint_problem(endpoint: object) -> str | None:
    """Why `endpoint` cannot be a collector's base URL, or None when it can."""
    import urllib.parse

    if not isinstance(endpoint, str):
        return f"endpoint must be a string, not {type(endpoint).__name__}"
    shown = repr(endpoint[:200])
    if not endpoint.isprintable() or any(character.isspace() for character in endpoint):
        return f"endpoint {shown} has spaces or control characters"
    try:
        url = urllib.parse.urlsplit(endpoint)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return f"endpoint {shown} is not a valid URL"
    if url.scheme.lower() not in ("http", "https"):
        return f"endpoint {shown} is not an http(s) URL, such as https://footfall.example.org"
    if not url.hostname:
        return f"endpoint {shown} has no host name, as in https://footfall.example.org"
    if url.query or url.fragment:
        return f"endpoint {shown} must not have a query or a fragment: it is the collector's base URL"
    return None


def check_options(options: Mapping[str, Any]) -> None:
    """Raise ValueError, naming the option, for the first `footfall.init` option that is wrong.

    `footfall disclose` runs it too, so a tool's ANALYTICS.md is never written from options
    that `init` would refuse.
    """
    app = options.get("app")
    if not isinstance(app, str) or not compiled(APP_PATTERN).match(app):
        raise ValueError(f"app {app!r} must be a lowercase id (1-64 of a-z 0-9 . _ -)")
    if "endpoint" in options:
        problem = endpoint_problem(options["endpoint"])
        if problem is not None:
            raise ValueError(problem)
    for name, choices in CHOICES.items():
        value = options.get(name, choices[0])
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, not {value!r}")
    for name in ("opt_out_env", "enable_env"):
        variable = options.get(name)
        if variable is not None and not (isinstance(variable, str) and compiled(ENV_NAME_PATTERN).match(variable)):
            raise ValueError(f"{name}: {variable!r} is not an environment variable name")
    command = options.get("analytics_command")
    if command is not None and not (isinstance(command, str) and compiled(COMMAND_PATTERN).match(command)):
        raise ValueError(f"analytics_command {command!r} must be the command's words, such as 'mytool analytics'")


@no_throw(default=NullClient(), unless="strict")
def init(
    app: str,
    endpoint: str,
    app_version: str = "",
    *,
    notice: str = "once",
    notice_text: str | None = None,
    notice_version: int = 1,
    link: str | None = None,
    notice_needs_tty: bool = False,
    consent: str = "opt-out",
    prompt: bool = False,
    opt_out_env: str | None = None,
    enable_env: str | None = None,
    analytics_command: str | None = None,
    identity: str = "random",
    ci: str = "tag",
    schema: Schema | None = None,
    before_send: BeforeSend | None = None,
    transport: Transport | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S,
    strict: bool = False,
) -> Client | NullClient:
    """Create the client for `app`, reporting to the collector at `endpoint`.

    Never raises: bad arguments give a `NullClient` (and a line with FOOTFALL_DEBUG=1), and an
    endpoint that is not an http(s) URL gives a client that sends nothing and says why in
    `analytics status`. With `strict=True`, for the tool's own tests, each of these is a
    ValueError instead. See docs/sdk.md for every option; the consent layers are in
    footfall.consent.
    """
    options = {
        "app": app,
        "notice": notice,
        "consent": consent,
        "identity": identity,
        "ci": ci,
        "opt_out_env": opt_out_env,
        "enable_env": enable_env,
        "analytics_command": analytics_command,
    }
    check_options(options)
    bad_endpoint = endpoint_problem(endpoint)
    if bad_endpoint is not None and strict:
        raise ValueError(bad_endpoint)
    environ = os.environ
    state = ToolState(os.fspath(state_dir) if state_dir is not None else config_dir(), app)
    decision = _consent_layers(environ, state, opt_out_env, enable_env, consent, ci)
    if bad_endpoint is not None and decision.enabled:
        decision = _refused_endpoint(bad_endpoint)
    if decision.enabled and consent == "opt-out":
        text = notice_text or _default_notice(app, schema, opt_out_env, enable_env, analytics_command, link)
        decision = _show_notice(state, text, notice, notice_version, notice_needs_tty, decision)
    elif not decision.enabled and consent == "opt-in" and prompt and decision.layer == "default":
        text = notice_text or _default_notice(app, schema, opt_out_env, enable_env, analytics_command, link)
        decision = _prompt(state, text)
    if not decision.enabled:
        debug(f"analytics off ({decision.layer}: {decision.reason})")
        # A run that may not send makes no id. An opt-out variable keeps an existing one (it
        # never leaves the machine while the variable is set): deleting it would make the next
        # run without the variable count as a new install. `analytics off` deletes it for good
        # (Client.set_enabled); a saved "off" left with an id (an older version) deletes it here.
        state.may_make_id = False
        if decision.layer == "saved setting" and state.install_id(create=False):
            state.update(install_id=None)
    if debug_enabled():
        refused = state.collector_refusal()
        if refused is not None:
            debug(f"an earlier run: {refusal_sentence(refused, app)} Until it takes a batch, nothing arrives.")
        transport = DebugTransport()
    elif transport is None:
        transport = HttpTransport(endpoint) if bad_endpoint is None else NoTransport()
    builder = BatchBuilder(app, app_version, state, identity, ci, schema, before_send)
    return Client(builder, transport, state, decision, queue_size, exit_timeout)


def _refused_endpoint(problem: str) -> consent.Decision:
    return consent.Decision(False, "endpoint", f"{problem}; nothing is sent")


def _consent_layers(
    environ: Any,
    state: ToolState,
    opt_out_env: str | None,
    enable_env: str | None,
    policy: str,
    ci: str,
) -> consent.Decision:
    return consent.decide(
        environ,
        state,
        opt_out_env=opt_out_env,
        enable_env=enable_env,
        consent=policy,
        ci_policy=ci,
        ci_provider=detect_ci(environ) if ci == "suppress" else "",
    )


def _default_notice(
    app: str,
    schema: Schema | None,
    opt_out_env: str | None,
    enable_env: str | None,
    analytics_command: str | None,
    link: str | None,
) -> str:
    switches = [f"{analytics_command} off"] if analytics_command else []
    switches += [f"{opt_out_env}=1"] if opt_out_env else []
    switches += [f"{enable_env}=false"] if enable_env else []
    events = schema.notice_lines() if schema is not None else None
    return consent.default_notice(app, events, switches, link)


def _show_notice(
    state: ToolState,
    text: str,
    policy: str,
    version: int,
    needs_tty: bool,
    decision: consent.Decision,
) -> consent.Decision:
    if policy == "every-run":
        consent.print_notice(text)
        return decision
    if state.notice_version >= version:
        return decision
    shown = consent.print_notice(text) and (not needs_tty or consent.is_tty(sys.stderr))
    if shown:
        state.update(notice_version=version)
    return consent.Decision(False, "notice", "the notice was shown in this run; sending starts next run")


def _prompt(state: ToolState, text: str) -> consent.Decision:
    undecided = consent.Decision(False, "default", "this tool asks before sending anything")
    if not (consent.is_tty(sys.stdin) and consent.is_tty(sys.stderr)):
        return undecided
    consent.print_notice(text)
    answer = consent.ask("Share anonymous usage statistics? [y/N] ")
    if answer is None:
        return undecided
    state.update(enabled=answer)
    verb = "on" if answer else "off"
    return consent.Decision(answer, "saved setting", f"turned {verb} at the prompt")
