"""A deliberately slow MCP stdio server for the client's timeout test (no dependencies).

It answers `initialize` and `tools/list` like any server, then never answers `tools/call`
of the tool `wait_forever`, so the client's per-call timeout must end the call.
"""

import json
import sys

TOOL = {
    "name": "wait_forever",
    "description": "Never answers.",
    "inputSchema": {"type": "object", "properties": {}},
}

for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if mid is None:
        continue
    if method == "initialize":
        result = {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "slow-server", "version": "1"},
        }
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        continue
    else:
        print(json.dumps({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no such method"}}), flush=True)
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}), flush=True)
