"""An external agent, written against the official MCP Python SDK (`mcp` from PyPI) only,
that drives Noctune Studio's whole approval flow:

  run A: enqueue_run -> tail_events until an approval is pending -> list_approvals ->
         decide_approval(approve) -> tail_events until the run is done
  run B: enqueue_run -> tail_events until an approval is pending -> stop_run ->
         tail_events until the run is stopped

Transports:
  --stdio BIN            start `BIN mcp --repo REPO` and talk over its stdin/stdout
  --url URL --token T    Streamable HTTP (e.g. http://127.0.0.1:PORT/mcp), with
                         `Authorization: Bearer T`

It prints one JSON object (what it saw) on stdout; the Rust test compares it with the run's
commits, run.json and the audit DB. Any surprise exits non-zero with a message on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

CLIENT_NAME = "python-sdk-agent"
TOOLS = {"enqueue_run", "get_status", "tail_events", "list_approvals", "decide_approval", "stop_run"}
TERMINAL = {"done", "failed", "stopped"}
ERROR_META_KEY = "io.noctune/error"  # where a failed call's result carries {error, message}


def fail(msg: str) -> None:
    print(f"agent_flow: {msg}", file=sys.stderr)
    sys.exit(1)


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    r = await client.call_tool(tool, args)
    if r.is_error:
        text = " ".join(getattr(c, "text", "") for c in r.content)
        fail(f"{tool}({args}) failed: {text}")
    if not isinstance(r.structured_content, dict):
        fail(f"{tool} returned no structured content: {r}")
    return r.structured_content


async def tail(client: Client, run_id: str, cursor: int, until: str, seen: list[dict], timeout: float) -> int:
    """Reads events from `cursor` until one of type `until` appears or the run is over and
    every event was read. Returns the next cursor."""
    deadline = time.monotonic() + timeout
    while True:
        page = await call(client, "tail_events", {"run_id": run_id, "cursor": cursor, "limit": 200})
        for i, e in enumerate(page["events"]):
            if e["idx"] != cursor + i:
                fail(f"event idx {e['idx']} where {cursor + i} was expected")
        seen.extend(page["events"])
        cursor = page["next_cursor"]
        if any(e["type"] == until for e in page["events"]):
            return cursor
        if page["status"] in TERMINAL and not page["more"]:
            if until in TERMINAL or until in ("run_done", "stopped"):
                return cursor
            fail(f"run {run_id} ended {page['status']} before a {until} event")
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {until} in run {run_id}; last status {page['status']}")
        if not page["more"]:
            await asyncio.sleep(0.2)


async def drain(client: Client, run_id: str, cursor: int, seen: list[dict], timeout: float) -> tuple[int, dict]:
    """Tails until the run is terminal and every event was read."""
    deadline = time.monotonic() + timeout
    while True:
        page = await call(client, "tail_events", {"run_id": run_id, "cursor": cursor, "limit": 200})
        seen.extend(page["events"])
        cursor = page["next_cursor"]
        if page["status"] in TERMINAL and not page["more"]:
            status = await call(client, "get_status", {"run_id": run_id})
            return cursor, status
        if time.monotonic() > deadline:
            fail(f"run {run_id} did not end in time; status {page['status']}")
        if not page["more"]:
            await asyncio.sleep(0.2)


async def approve_flow(client: Client, repo: str) -> dict:
    run = await call(client, "enqueue_run", {"repo_root": repo, "pack": "lint_fix"})
    run_id = run["run_id"]
    seen: list[dict] = []
    cursor = await tail(client, run_id, 0, "approval_requested", seen, 120)
    listing = await call(client, "list_approvals", {"run_id": run_id})
    pending = [a for a in listing["approvals"] if a["status"] == "pending"]
    if len(pending) != 1 or listing["pending"] != 1:
        fail(f"expected one pending approval, got {listing}")
    approval = pending[0]
    decision = await call(
        client,
        "decide_approval",
        {"run_id": run_id, "approval_id": approval["approval_id"], "decision": "approve", "reason": "reviewed by the python agent"},
    )
    cursor, status = await drain(client, run_id, cursor, seen, 180)
    if status["status"] != "done":
        fail(f"run {run_id} ended {status['status']}: {status.get('error')}")
    types = [e["type"] for e in seen]
    for t in ("run_queued", "approval_requested", "approval_decided", "patchset_committed", "run_done"):
        if t not in types:
            fail(f"run {run_id}: no {t} event in {types}")
    final_approvals = await call(client, "list_approvals", {"run_id": run_id})
    return {
        "run_id": run_id,
        "branch": status["branch"],
        "status": status,
        "approval_id": approval["approval_id"],
        "approval_file": approval["file_path"],
        "decision": decision,
        "events": len(seen),
        "event_types": types,
        "committed": [e["payload"] for e in seen if e["type"] == "patchset_committed"],
        "approvals": final_approvals["approvals"],
    }


async def stop_flow(client: Client, repo: str) -> dict:
    run = await call(client, "enqueue_run", {"repo_root": repo, "pack": "lint_fix"})
    run_id = run["run_id"]
    seen: list[dict] = []
    cursor = await tail(client, run_id, 0, "approval_requested", seen, 120)
    stopped = await call(client, "stop_run", {"run_id": run_id, "grace_secs": 5})
    if stopped["status"] != "stopped":
        fail(f"stop_run left run {run_id} {stopped['status']}")
    cursor, status = await drain(client, run_id, cursor, seen, 60)
    types = [e["type"] for e in seen]
    if "stopped" not in types:
        fail(f"run {run_id}: no stopped event in {types}")
    return {"run_id": run_id, "status": status, "events": len(seen), "event_types": types}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stdio", help="the noctune binary (started as `BIN mcp --repo REPO`)")
    ap.add_argument("--url", help="Streamable HTTP endpoint, e.g. http://127.0.0.1:PORT/mcp")
    ap.add_argument("--token", help="bearer token for --url")
    ap.add_argument("--repo", required=True, help="a git repository made from fixtures/pyproj")
    ap.add_argument("--skip-stop", action="store_true", help="only the approve flow")
    a = ap.parse_args()

    info = Implementation(name=CLIENT_NAME, version="1.0")
    if a.stdio:
        # --repo: the allowed roots are the repository's (without it, the working directory's).
        server: Any = StdioServerParameters(command=a.stdio, args=["mcp", "--repo", a.repo], env=dict(os.environ))
        transport = "stdio"
    elif a.url:
        headers = {"Authorization": f"Bearer {a.token}"} if a.token else {}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0, read=300.0))
        server = streamable_http_client(a.url, http_client=http)
        transport = "http"
    else:
        fail("pass --stdio BIN or --url URL")

    async with Client(server, client_info=info) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        if set(tools) != TOOLS:
            fail(f"tools {sorted(tools)} != {sorted(TOOLS)}")
        missing = [n for n, t in tools.items() if not t.output_schema]
        if missing:
            fail(f"tools without an output schema: {missing}")
        # An error is a tool result the agent can read, not an exception: isError, no
        # structuredContent (that is the success shape), the code and message in _meta.
        bad = await client.call_tool("get_status", {"run_id": "20990101T000000Z-00000000"})
        err = (bad.meta or {}).get(ERROR_META_KEY) or {}
        text = " ".join(getattr(c, "text", "") for c in bad.content)
        if (
            not bad.is_error
            or bad.structured_content is not None
            or err.get("error") != "unknown_run"
            or not text.startswith("unknown_run: ")
        ):
            fail(f"an unknown run should be a tool error with {ERROR_META_KEY} in _meta: {bad}")
        out: dict[str, Any] = {"transport": transport, "client_name": CLIENT_NAME}
        out["protocol_version"] = str(getattr(client, "protocol_version", "") or "")
        out["approve"] = await approve_flow(client, a.repo)
        if not a.skip_stop:
            out["stop"] = await stop_flow(client, a.repo)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
