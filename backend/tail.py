"""`python -m backend tail TOPIC [TOPIC…] [--url URL] [--token TOKEN]`: print topics'
snapshots and live events, one JSON object per line, for debugging.

Frames go to stdout exactly as the typed client parsed them (`hello` and `error`
frames to stderr), so the output pipes into `jq`. Built on `aiohttp_realtime.client`,
i.e. on the published schema alone. Exit status: 0 when the server closes normally
or `--limit` frames were printed, 1 on an abnormal close, a refused token (HTTP 401)
or when every topic failed.

A server with authentication on wants a token: it is sent as `Authorization: Bearer`.
Prefer the environment variable BACKEND_TOKEN to `--token`: a command-line argument
is visible to other users in `ps` and stays in the shell's history.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TextIO

import aiohttp

from aiohttp_realtime.client import (
    ClosedError,
    ErrorFrame,
    EventFrame,
    HelloFrame,
    SnapshotFrame,
    UnauthorizedError,
    check_token,
    connect,
)

DEFAULT_URL = "ws://127.0.0.1:8080/api/realtime"


async def tail(
    url: str,
    topics: list[str],
    out: TextIO,
    err: TextIO,
    *,
    limit: int | None = None,
    session: aiohttp.ClientSession | None = None,
    token: str | None = None,
) -> int:
    printed = 0
    failed: set[str] = set()
    try:
        async with connect(url, session=session, token=token) as client:
            print(client.hello.model_dump_json(exclude_none=True), file=err, flush=True)
            await client.subscribe(*topics)
            async for message in client:
                if isinstance(message, SnapshotFrame | EventFrame):
                    print(message.model_dump_json(exclude_none=True), file=out, flush=True)
                    printed += 1
                    if limit is not None and printed >= limit:
                        return 0
                elif not isinstance(message, HelloFrame):
                    print(message.model_dump_json(exclude_none=True), file=err, flush=True)
                    if isinstance(message, ErrorFrame) and message.topic is not None:
                        failed.add(message.topic)
                        if failed >= set(topics):
                            return 1
            code = client.ws.close_code
    except UnauthorizedError:
        why = "the token was not accepted" if token else "a token is required: set BACKEND_TOKEN (or --token)"
        print(f"tail: {url}: refused with HTTP 401 (unauthorized): {why}", file=err, flush=True)
        return 1
    except (ClosedError, aiohttp.ClientError, OSError) as exc:
        print(f"tail: {url}: {exc}", file=err, flush=True)
        return 1
    print(f"tail: connection closed (code {code})", file=err, flush=True)
    return 0 if code in (1000, 1001, 1012) else 1


def _token(value: str) -> str | None:
    if not value:
        return None  # BACKEND_TOKEN= (empty): no token
    try:
        return check_token(value)
    except ValueError as exc:  # ArgumentTypeError: argparse would quote the value otherwise
        raise argparse.ArgumentTypeError(f"{exc} (from --token or BACKEND_TOKEN)") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m backend tail",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("topics", nargs="+", metavar="TOPIC", help="e.g. sessions.state")
    parser.add_argument(
        "--url",
        default=os.environ.get("BACKEND_URL", DEFAULT_URL),
        help=f"the realtime endpoint (env BACKEND_URL, default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        type=_token,
        default=os.environ.get("BACKEND_TOKEN"),
        help="bearer token, for a server with authentication on (env BACKEND_TOKEN, preferred: "
        "an argument shows in ps and the shell's history)",
    )
    parser.add_argument("--limit", type=int, help="exit after printing this many snapshots and events")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(
            tail(args.url, args.topics, sys.stdout, sys.stderr, limit=args.limit, token=args.token)
        )
    except KeyboardInterrupt:
        return 130
