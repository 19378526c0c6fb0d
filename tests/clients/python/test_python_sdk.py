"""The official MCP Python SDK (`mcp` on PyPI) against a running QuDAG MCP server.

usage: python test_python_sdk.py URL

`mcp.client.Client` speaks both eras: mode="legacy" runs the initialize handshake
(offering 2025-11-25, the SDK's LATEST_HANDSHAKE_VERSION) and mode="auto" (the SDK's
default) probes `server/discover` and, against a 2026-07-28 server, runs the stateless
era. For each it connects, lists tools, calls `echo`, reads `test://static-text` and
gets `test_prompt_with_arguments`, printing one `PASS <name>` or `FAIL <name>: <why>`
line per check. Exit status 0 only when every check passed.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

CLIENT = "python-sdk"
STATIC_TEXT = "This is the content of the static text resource."
TIMEOUT_S = 20
CHECKS = ["connect", "tools/list", "tools/call", "resources/read", "prompts/get"]


class CheckFailed(Exception):
    pass


def ensure(cond: bool, why: str) -> None:
    if not cond:
        raise CheckFailed(why)


def describe(exc: BaseException) -> str:
    """One line naming the innermost causes (task groups wrap errors in ExceptionGroups)."""
    inner = getattr(exc, "exceptions", None)  # an ExceptionGroup (builtin from 3.11)
    if isinstance(inner, (list, tuple)) and inner:
        return "; ".join(describe(e) for e in inner)
    if isinstance(exc, CheckFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    async def check(self, era: str, name: str, fn: Callable[[], Awaitable[None]]) -> bool:
        label = f"{CLIENT} {era} {name}"
        try:
            with anyio.fail_after(TIMEOUT_S):
                await fn()
        except Exception as exc:  # noqa: BLE001 - every failure is reported, not raised
            self.failed += 1
            if not isinstance(exc, CheckFailed):
                traceback.print_exc(file=sys.stderr)
            print(f"FAIL {label}: {' '.join(describe(exc).split())}", flush=True)
            return False
        self.passed += 1
        print(f"PASS {label}", flush=True)
        return True

    def not_run(self, era: str, names: list[str], why: str) -> None:
        for name in names:
            self.failed += 1
            print(f"FAIL {CLIENT} {era} {name}: not run: {why}", flush=True)


def recording_http_client(wire: list[dict[str, Any]]) -> httpx2.AsyncClient:
    """An HTTP client that records each request's method and MCP headers."""

    async def on_request(request: httpx2.Request) -> None:
        wire.append(
            {
                "http": request.method,
                "session": request.headers.get("mcp-session-id"),
                "version": request.headers.get("mcp-protocol-version"),
                "mcp_method": request.headers.get("mcp-method"),
            }
        )

    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(30, read=300), event_hooks={"request": [on_request]}
    )


async def run_era(url: str, era: str, mode: str, report: Report) -> None:
    stateful = mode == "legacy"
    wire: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(recording_http_client(wire))
        # The client's task groups must be entered and left in this task, outside any
        # check's cancel scope, so connecting is timed by the client's own read timeout.
        try:
            client = await stack.enter_async_context(
                Client(
                    streamable_http_client(url, http_client=http),  # type: ignore[arg-type]
                    mode=mode,  # type: ignore[arg-type]
                    read_timeout_seconds=TIMEOUT_S,
                )
            )
            connect_error: Exception | None = None
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            connect_error = exc

        async def connect() -> None:
            if connect_error is not None:
                raise connect_error
            ensure(client.protocol_version == era, f"negotiated protocol version {client.protocol_version}, expected {era}")
            ensure(client.server_capabilities.tools is not None, "server did not advertise tools")
            if stateful:
                info = client.server_info
                ensure(info is not None and info.name == "qudag-mcp", f"serverInfo is {info!r}")

        await report.check(era, "connect", connect)
        if connect_error is not None:
            report.not_run(era, CHECKS[1:], "connect failed")
            return

        async def tools_list() -> None:
            names: list[str] = []
            cursor: str | None = None
            for _ in range(100):
                res = await client.list_tools(cursor=cursor, cache_mode="bypass")
                names += [t.name for t in res.tools]
                cursor = res.next_cursor
                if not cursor:
                    break
            for want in ("echo", "test_simple_text"):
                ensure(want in names, f"tool {want} missing from {names}")
            # The era shows on the wire: a session id on every stateful request after
            # initialize, none at all in the stateless era.
            if stateful:
                ensure(bool(wire[-1]["session"]), "tools/list carried no Mcp-Session-Id on a stateful session")
            else:
                ensure(all(not w["session"] for w in wire), "a stateless request carried Mcp-Session-Id")
                ensure(wire[-1]["version"] == era, f"MCP-Protocol-Version header {wire[-1]['version']!r}")

        async def tools_call() -> None:
            res = await client.call_tool("echo", {"text": "hello"})
            ensure(not res.is_error, f"tool reported an error: {res}")
            got = [c.model_dump(exclude_none=True) for c in res.content]
            ensure(got == [{"type": "text", "text": "hello"}], f"content is {got}")
            if not stateful:
                ensure(wire[-1]["mcp_method"] == "tools/call", f"Mcp-Method header {wire[-1]['mcp_method']!r}")

        async def resources_read() -> None:
            res = await client.read_resource("test://static-text", cache_mode="bypass")
            ensure(len(res.contents) == 1, f"expected one content item, got {res.contents}")
            item = res.contents[0]
            ensure(str(item.uri) == "test://static-text", f"content uri {item.uri}")
            ensure(getattr(item, "text", None) == STATIC_TEXT, f"text is {getattr(item, 'text', None)!r}")

        async def prompts_get() -> None:
            res = await client.get_prompt("test_prompt_with_arguments", {"arg1": "alpha-py", "arg2": "beta-py"})
            ensure(len(res.messages) > 0, f"no messages in {res}")
            text = "\n".join(getattr(m.content, "text", "") for m in res.messages)
            for want in ("alpha-py", "beta-py"):
                ensure(want in text, f"messages do not mention {want!r}: {text!r}")

        await report.check(era, "tools/list", tools_list)
        await report.check(era, "tools/call", tools_call)
        await report.check(era, "resources/read", resources_read)
        await report.check(era, "prompts/get", prompts_get)


async def main(url: str) -> int:
    report = Report()
    for era, mode in (("2025-11-25", "legacy"), ("2026-07-28", "auto")):
        try:
            await run_era(url, era, mode, report)
        except Exception as exc:  # noqa: BLE001 - e.g. a failure while closing
            traceback.print_exc(file=sys.stderr)
            report.failed += 1
            print(f"FAIL {CLIENT} {era} teardown: {' '.join(describe(exc).split())}", flush=True)
    print(f"{CLIENT}: {report.passed} passed, {report.failed} failed", file=sys.stderr)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: test_python_sdk.py URL", file=sys.stderr)
        sys.exit(2)
    sys.exit(anyio.run(main, sys.argv[1]))
