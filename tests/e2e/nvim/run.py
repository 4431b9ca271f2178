#!/usr/bin/env python3
"""Runs the Neovim plugin tests: each test_*.lua in a fresh headless Neovim, against the real
`noctune` binary, a fresh git repository made from fixtures/pyproj and the fake model server.

Environment: NVIM (the nvim binary), NOCTUNE_BIN (the noctune binary)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import fake_llm  # noqa: E402


def make_repo(dest):
    ignore = shutil.ignore_patterns(".noctune_cache", "__pycache__", ".ruff_cache", ".pytest_cache")
    shutil.copytree(os.path.join(ROOT, "fixtures", "pyproj"), dest, ignore=ignore)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "core.hooksPath=/dev/null"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(git + args, cwd=dest, check=True)


def main():
    nvim = os.environ.get("NVIM") or shutil.which("nvim")
    noctune = os.environ.get("NOCTUNE_BIN") or shutil.which("noctune")
    if not nvim or not noctune:
        sys.exit(f"need NVIM and NOCTUNE_BIN (got nvim={nvim}, noctune={noctune})")
    version = subprocess.run([nvim, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"using {version} ({nvim}) and {noctune}")
    server, llm_url = fake_llm.start()
    wanted = sys.argv[1:] or sorted(f for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".lua"))
    failed = []
    for test in wanted:
        with tempfile.TemporaryDirectory(prefix="noctune-nvim-") as tmp:
            repo = os.path.join(tmp, "repo")
            make_repo(repo)
            repo = os.path.realpath(repo)
            bindir = os.path.join(tmp, "bin")
            os.makedirs(bindir)
            os.symlink(noctune, os.path.join(bindir, "noctune"))
            env = dict(os.environ)
            env.update({
                "PATH": bindir + os.pathsep + env.get("PATH", ""),
                "NOCTUNE_STUDIO_DB": os.path.join(tmp, "audit.sqlite"),
                "NOCTUNE_STUDIO_LLM_BASE_URL": llm_url,
                "NOCTUNE_TEST_REPO": repo,
                "NOCTUNE_TEST_DIR": HERE,
                "XDG_STATE_HOME": os.path.join(tmp, "state"),
                "XDG_CONFIG_HOME": os.path.join(tmp, "config"),
                "XDG_DATA_HOME": os.path.join(tmp, "data"),
            })
            env.pop("NOCTUNE_STUDIO_ALLOWED_ROOTS", None)
            cmd = [nvim, "--headless", "--clean", "--cmd", f"set rtp^={os.path.join(ROOT, 'editors', 'nvim')}",
                   "-c", f"luafile {os.path.join(HERE, test)}"]
            t = time.monotonic()
            try:
                p = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
                out, code = p.stdout + p.stderr, p.returncode
            except subprocess.TimeoutExpired as e:
                out, code = f"{e.stdout or ''}{e.stderr or ''}\nTIMEOUT", -1
            took = time.monotonic() - t
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"nvim {test}: {status} in {took:.1f}s")
            if code != 0:
                print(out)
                failed.append(test)
    server.shutdown()
    if failed:
        sys.exit(f"{len(failed)} Neovim test(s) failed: {', '.join(failed)}")
    print("all Neovim tests passed")


if __name__ == "__main__":
    main()
