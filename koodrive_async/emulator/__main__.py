"""Run the emulator in the foreground: ``python -m koodrive_async.emulator [options]``.

It prints its base URL as the only line on stdout (so scripts can read it),
then serves until SIGINT or SIGTERM, and exits 0 after a clean shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from ._config import EmulatorConfig, ResponseVariant
from ._quota import Quota
from ._server import KooDriveEmulator


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser.

    Returns:
        The parser.
    """
    p = argparse.ArgumentParser(
        prog="python -m koodrive_async.emulator",
        description="Serve a local KooDrive task/batch-job Open API emulator.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one")
    p.add_argument(
        "--task-duration", type=float, default=1.0, help="seconds a task runs (virtual clock)"
    )
    p.add_argument("--failure-rate", type=float, default=0.0, help="share of tasks that fail")
    p.add_argument(
        "--token",
        action="append",
        default=[],
        help="accepted bearer token (repeatable; none given = any non-empty token)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the emulator's RNGs")
    p.add_argument("--clock-speed", type=float, default=1.0, help="virtual clock speed factor")
    p.add_argument(
        "--clock-skew", type=float, default=0.0, help="seconds added to the server's wall clock"
    )
    p.add_argument(
        "--x-date-max-age",
        type=float,
        default=15 * 60.0,
        help="seconds an X-Date may be old before a request is refused (default 900)",
    )
    p.add_argument("--page-size-cap", type=int, default=100, help="most tasks per list page")
    p.add_argument("--empty-page-every", type=int, default=0, help="every Nth list page is empty")
    p.add_argument("--partial-pages", action="store_true", help="list pages come back short")
    p.add_argument(
        "--ledger-limit",
        type=int,
        default=100_000,
        help="keep only the newest N requests in the ledger (0 keeps all)",
    )
    p.add_argument("--list-key", choices=("taskList", "taskListDtos"), default="taskListDtos")
    p.add_argument("--code-as", choices=("int", "str"), default="int")
    p.add_argument("--cursor-as", choices=("number", "str"), default="number")
    # Credentials of the session routes and app authentication (test values:
    # a command line is visible to other local users).
    for flag, meta, what in (
        ("--session-code", "CODE=USER_ID", "authorization code POST session accepts"),
        ("--refresh-token", "TOKEN=USER_ID", "carrier refresh token auth/refreshToken accepts"),
        ("--app", "APP_ID=APP_SECRET", "app whose HMAC-SHA256 signatures are accepted"),
    ):
        p.add_argument(flag, action="append", default=[], type=_pair, metavar=meta, help=what)
    p.add_argument(
        "--session-idle-timeout",
        type=float,
        default=1200.0,
        help="virtual seconds a session token lives unused (default 1200)",
    )
    p.add_argument(
        "--carrier-expires-in",
        type=float,
        default=1800.0,
        help="expiresIn (seconds) of carrier access tokens (default 1800)",
    )
    p.add_argument(
        "--token-form",
        choices=("documented", "bare", "bearer_space", "bearer_plus", "at_space"),
        default="documented",
    )
    p.add_argument(
        "--quota",
        type=float,
        default=None,
        metavar="RATE",
        help="per-user quota: creates (or requests, see --quota-scope) per second, then 429",
    )
    p.add_argument(
        "--quota-burst", type=float, default=None, help="the quota's burst (default: one second's)"
    )
    p.add_argument("--quota-scope", choices=("creates", "all"), default="creates")
    return p


def _quota(args: argparse.Namespace) -> Quota | None:
    if args.quota is None:
        if args.quota_burst is not None:
            raise ValueError("--quota-burst needs --quota")
        return None
    if args.quota_burst is None:
        return Quota(args.quota, scope=args.quota_scope)
    return Quota(args.quota, args.quota_burst, scope=args.quota_scope)


def _pair(value: str) -> tuple[str, str]:
    key, sep, rest = value.partition("=")
    if not sep or not key or not rest:
        # Never quote the value: it holds a credential.
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    return key, rest


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with KooDriveEmulator(config, host=host, port=port) as emu:
        print(emu.url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until SIGINT/SIGTERM.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    args = build_parser().parse_args(argv)
    try:
        config = EmulatorConfig(
            tokens=frozenset(args.token),
            task_duration=args.task_duration,
            failure_rate=args.failure_rate,
            seed=args.seed,
            page_size_cap=args.page_size_cap,
            response_variant=ResponseVariant(
                list_key=args.list_key,
                code_as=args.code_as,
                cursor_as=args.cursor_as,
                token_form=args.token_form,
            ),
            clock_skew=args.clock_skew,
            x_date_max_age=args.x_date_max_age,
            clock_speed=args.clock_speed,
            empty_page_every=args.empty_page_every,
            partial_pages=args.partial_pages,
            ledger_limit=args.ledger_limit or None,
            session_codes=dict(args.session_code),
            refresh_tokens=dict(args.refresh_token),
            apps=dict(args.app),
            session_idle_timeout=args.session_idle_timeout,
            carrier_expires_in=args.carrier_expires_in,
            quota=_quota(args),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
