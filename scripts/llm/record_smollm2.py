#!/usr/bin/env python3
"""Records SmolLM2-135M-Instruct's real answers for fixtures/llm/recordings/smollm2/.

For every NAME.request.json in that folder (a chat-completions body as noctune sends it), POSTs it
to llama-server's /v1/chat/completions and writes the raw response body (the SSE text, de-chunked,
byte for byte) to NAME.sse. tests/it/chat_recorded.rs replays them through the scripted server.

    scripts/llm/record_smollm2.py                  start the kit's server (llama-kit.sh serve PORT smollm2),
                                                   record, stop it
    scripts/llm/record_smollm2.py --url URL        use a running server (URL ends in /v1)
    scripts/llm/record_smollm2.py --only NAME ...  record only these

The requests ask for temperature 0, so the same server build and model give the same answers.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "fixtures" / "llm" / "recordings" / "smollm2"
KIT = ROOT / "scripts" / "llm" / "llama-kit.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(root: str, proc: subprocess.Popen[bytes] | None, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"record: llama-server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # polling /health: the server loads the model
    sys.exit(f"record: {root} did not become healthy in {seconds:.0f} s")


def record(url: str, name: str) -> None:
    body = json.loads((FOLDER / f"{name}.request.json").read_text())
    req = urllib.request.Request(
        f"{url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=300) as r:
        raw = r.read()
    (FOLDER / f"{name}.sse").write_bytes(raw)
    text = "".join(
        (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for line in raw.decode().splitlines()
        if line.startswith("data: {")
    )
    print(f"record: {name}.sse: {len(raw)} bytes, answer {text[:70]!r}{'...' if len(text) > 70 else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running llama-server serving SmolLM2 (http://127.0.0.1:PORT/v1)")
    ap.add_argument("--only", nargs="*", help="request names to record (default: all)")
    args = ap.parse_args()
    names = args.only or sorted(p.name.removesuffix(".request.json") for p in FOLDER.glob("*.request.json"))
    proc = None
    url = args.url
    if not url:
        port = free_port()
        proc = subprocess.Popen(
            [str(KIT), "serve", str(port), "smollm2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_healthy(url.removesuffix("/v1"), proc)
        for name in names:
            record(url.rstrip("/"), name)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
