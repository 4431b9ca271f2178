#!/usr/bin/env python3
"""Reads a finished run's records for scripts/real-projects.sh and judges the tier.

  record ...        one JSON line for a project (run.json, events.jsonl and what the script saw)
  show --project P  that project's block of the report
  table FILE        the table of every project
  verdict FILE      exit 1 (and say why) when a project failed the tier's rules
"""

import argparse
import json
import sys
from pathlib import Path


def read_events(run_dir: Path):
    out = []
    path = run_dir / "events.jsonl"
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def record(a) -> None:
    run_dir = Path(a.run_dir)
    rec = json.loads((run_dir / "state" / "run.json").read_text(encoding="utf-8"))
    events = read_events(run_dir)
    baselines = []
    committed = []
    rolled_back = []
    counts = {}
    for e in events:
        t, p = e.get("type"), e.get("payload") or {}
        counts[t] = counts.get(t, 0) + 1
        if t == "check_baseline":
            baselines.append(
                {
                    "tool": p.get("tool"),
                    "status": p.get("status"),
                    "failing": max(p.get("failing_total", 0), len(p.get("failing", []))),
                    "summary": p.get("summary"),
                    "note": p.get("note"),
                }
            )
        elif t == "patchset_committed":
            committed.append({"n": p.get("n"), "files": len(p.get("files", [])), "message": p.get("message")})
        elif t == "patchset_failed":
            rolled_back.append(
                {
                    "n": p.get("n"),
                    "files": len(p.get("files", [])),
                    "tool": p.get("tool"),
                    "reason": p.get("reason"),
                    "regressions": p.get("regressions", [])[:10],
                }
            )
    out = {
        "project": a.project,
        "req": a.req,
        "run_id": rec.get("run_id"),
        "status": rec.get("status"),
        "error": rec.get("error"),
        "reason": rec.get("reason"),
        "exit_code": a.exit_code,
        "seconds": a.seconds,
        "commits": a.commits,
        "commits_recorded": rec.get("commits"),
        "branch": rec.get("branch"),
        "summary": rec.get("summary"),
        "baselines": baselines,
        "committed": committed,
        "rolled_back": rolled_back,
        "events": {k: counts[k] for k in sorted(counts)},
        "switch_rc": a.switch_rc,
        "switch_out": a.switch_out,
        "main_import_rc": a.main_import_rc,
        "main_import": a.main_import,
        "branch_import_rc": a.branch_import_rc,
        "branch_import": a.branch_import,
        "log": a.log,
    }
    print(json.dumps(out))


def load(path: str):
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def baseline_text(r) -> str:
    parts = []
    for b in r.get("baselines", []):
        s = f"{b['tool']}: {b['status']}"
        if b.get("summary"):
            s += f" ({b['summary']})"
        parts.append(s)
    return "; ".join(parts) or "none taken"


SPLIT_MARK = "split into patchsets of"


def final_rollbacks(r) -> list:
    """Rolled-back patchsets that stayed rolled back (not the attempts that were split)."""
    return [f for f in r["rolled_back"] if SPLIT_MARK not in (f.get("reason") or "")]


def splits(r) -> int:
    return len(r["rolled_back"]) - len(final_rollbacks(r))


def problems(r) -> list:
    """Why a project fails the tier (empty when it passes)."""
    if "setup_error" in r:
        return [f"not set up: {r['setup_error']}"]
    out = []
    if r["status"] != "done":
        out.append(f"the run ended {r['status']}: {r.get('error') or ''}".rstrip(": "))
    if r["commits"] == 0:
        out.append(f"no commits ({r.get('reason') or 'no reason given'})")
    if r["commits"] != (r.get("commits_recorded") or 0):
        out.append(f"{r['commits']} commits on the branch but run.json says {r.get('commits_recorded')}")
    want_rc = 0 if r["commits"] > 0 else 3
    if r["status"] == "done" and r["exit_code"] != want_rc:
        out.append(f"noctune run exited {r['exit_code']}, not {want_rc}")
    if r["switch_rc"] != 0:
        out.append(f"git switch {r['branch']} failed: {r['switch_out']}")
    if r["main_import_rc"] == 0 and r["branch_import_rc"] != 0:
        out.append(f"imports on main but not on the branch: {r['branch_import']}")
    return out


def show(a) -> None:
    rows = [r for r in load(a.file) if r["project"] == a.project]
    if not rows:
        return
    r = rows[-1]
    if "setup_error" in r:
        print(f"   FAILED to set up: {r['setup_error']}")
        return
    s = r.get("summary") or {}
    print(f"   run {r['run_id']}: {r['status']}, exit {r['exit_code']}, {r['seconds']} s")
    print(f"   commits on {r['branch']}: {r['commits']}" + (f" (reason: {r['reason']})" if r.get("reason") else ""))
    print(
        "   files: proposed {files_proposed}, auto {auto_approved}, approved {approved}, rejected {rejected}, "
        "refused {refused}, dropped {dropped}".format(**{k: s.get(k, 0) for k in (
            "files_proposed", "auto_approved", "approved", "rejected", "refused", "dropped")})
    )
    for c in r["committed"]:
        print(f"   committed  #{c['n']}: {c['files']} files: {c['message']}")
    for f in r["rolled_back"]:
        what = "split" if SPLIT_MARK in (f.get("reason") or "") else "rolled back"
        print(f"   {what} #{f['n']}: {f['files']} files: {f['reason'][:400]}")
        for reg in f["regressions"][:5]:
            print(f"       regression: {reg}")
    for b in r["baselines"]:
        print(f"   baseline {b['tool']}: {b['status']}, {b['failing']} failing: {b['summary']}")
        if b.get("note"):
            print(f"       note: {b['note']}")
    for n in s.get("notes", []):
        print(f"   note: {n}")
    print(f"   git switch: {'ok' if r['switch_rc'] == 0 else 'FAILED: ' + r['switch_out']}")
    if r["main_import_rc"] != 0:
        print(f"   import on main fails too: {r['main_import']}")
    elif r["commits"] > 0:
        print(f"   import on the branch: {'ok' if r['branch_import_rc'] == 0 else 'BROKEN: ' + r['branch_import']}")
    for p in problems(r):
        print(f"   !! {p}")


def table(a) -> None:
    rows = load(a.file)
    print("| project | outcome | exit | commits | committed / rolled back | baseline | time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if "setup_error" in r:
            print(f"| {r['project']} | not set up: {r['setup_error']} | | | | | |")
            continue
        final = final_rollbacks(r)
        rb = "; ".join(f"{f['files']} file(s): {f['tool']}" for f in final)
        if splits(r):
            rb += f"{'; ' if rb else ''}{splits(r)} split(s)"
        outcome = r["status"] + (f" ({r['reason']})" if r.get("reason") else "")
        print(
            f"| {r['project']} | {outcome} | {r['exit_code']} | {r['commits']} | "
            f"{len(r['committed'])} / {len(final)}{' (' + rb + ')' if rb else ''} | "
            f"{baseline_text(r)} | {r['seconds']} s |"
        )


def verdict(a) -> int:
    bad = 0
    for r in load(a.file):
        for p in problems(r):
            print(f"FAIL {r['project']}: {p}")
            bad += 1
    if bad == 0:
        print("real-projects: every project ended with commits, a free branch and working imports")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--project", required=True)
    r.add_argument("--req", required=True)
    r.add_argument("--run-dir", required=True)
    r.add_argument("--exit-code", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--commits", type=int, required=True)
    r.add_argument("--switch-rc", type=int, required=True)
    r.add_argument("--switch-out", default="")
    r.add_argument("--main-import-rc", type=int, required=True)
    r.add_argument("--main-import", default="")
    r.add_argument("--branch-import-rc", type=int, required=True)
    r.add_argument("--branch-import", default="")
    r.add_argument("--log", default="")
    s = sub.add_parser("show")
    s.add_argument("--project", required=True)
    s.add_argument("file")
    t = sub.add_parser("table")
    t.add_argument("file")
    v = sub.add_parser("verdict")
    v.add_argument("file")
    a = ap.parse_args()
    if a.cmd == "record":
        record(a)
        return 0
    if a.cmd == "show":
        show(a)
        return 0
    if a.cmd == "table":
        table(a)
        return 0
    return verdict(a)


if __name__ == "__main__":
    sys.exit(main())
