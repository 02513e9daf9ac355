"""The README's scale-out block, run command by command as a user copies it, on a machine that holds a
Ray token file (a local ``bench run`` leaves ``~/.ray/auth_token``): a head and a worker node on
loopback, a ``bench run --address``, then a ``ray job submit``.

What the test changes, and only that: ``HEAD_IP`` is 127.0.0.1; each ``bench run`` gets options appended
that make it small (argparse keeps the last value: one task, naive Bayes, 2 trials, a few hundred rows,
no GPU, the runs in a temporary directory); ``bench`` is this interpreter's; ``HOME`` is a temporary one
holding the token file. Every process the block starts carries a marker in its environment, and only
those are stopped at the end (``ray stop`` would stop every Ray on the machine).
"""
from __future__ import annotations

import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="ray job submit needs Ray's dashboard packages (the cluster extra)")
psutil = pytest.importorskip("psutil")
pytestmark = [pytest.mark.slow, pytest.mark.cluster]

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent
SMALL = ["--task", "ee_gamma", "--model", "naive_bayes", "--trials", "2", "--n-train", "700", "--n-val", "150",
         "--n-test", "150", "--gpus-per-trial", "0"]


def block() -> list[str]:
    """The commands of the README's scale-out block (comments dropped)."""
    text = README.read_text().split("## Scaling out", 1)[1]
    code = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("  #", 1)[0].strip() for line in code.splitlines() if line.strip()]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _stop_mine(marker: str) -> None:
    mine = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("HB_README_BLOCK") == marker:
                mine.append(p)
        except (psutil.Error, OSError):
            continue
    for p in mine:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(mine, timeout=30)


def test_the_readme_cluster_block_works_as_written_with_a_token_file(tmp_path):
    commands = block()
    assert commands[0].startswith("ray get-auth-token") and commands[1] == "export RAY_AUTH_MODE=token"
    if not all(_port_free(p) for p in (6379, 8265)):
        pytest.skip("a Ray (or something else) holds port 6379 or 8265 on this machine")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))  # what a local bench run leaves
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), HB_README_BLOCK=marker, BENCH_DATA_DIR=str(tmp_path / "data"),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    runs = tmp_path / "runs"
    outputs = []
    try:
        for n, command in enumerate(commands):
            command = command.replace("HEAD_IP", "127.0.0.1")
            if command.startswith("export "):
                name, value = command.removeprefix("export ").split("=", 1)
                env[name] = value
                continue
            argv = shlex.split(command.split(">", 1)[0])
            if "bench" in argv:  # small, and into this test's directory
                argv += [*SMALL, "--runs-dir", str(runs), "--name", f"block-{n}", "--leaderboard-dir",
                         str(tmp_path / "board")]
            deadline = time.monotonic() + 300
            while True:  # the head's job agent may take a while to start on a loaded machine
                proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
                busy = "No available agent to submit job" in proc.stdout + proc.stderr
                if not busy or time.monotonic() > deadline:
                    break
                time.sleep(5)
            outputs.append((command, proc.returncode, proc.stdout[-1500:] + proc.stderr[-1500:]))
            assert proc.returncode == 0, outputs[-1]
        finished = sorted(p.parents[2].name for p in runs.glob("*/ee_gamma/naive_bayes/result.json"))
        assert finished == [f"block-{n}" for n, c in enumerate(commands) if "bench run" in c], outputs
    finally:
        _stop_mine(marker)


def test_a_head_that_wants_a_token_is_named_in_one_line(tmp_path):
    """``bench run --address`` against a token head, without ``RAY_AUTH_MODE=token``: one line saying so."""
    from benchmark.search import session

    e = RuntimeError("AuthenticationError: Ray authentication failed; RAY_AUTH_MODE is currently 'disabled'")
    assert session.is_auth_error(e) and not session.is_auth_error(RuntimeError("connection refused"))
    assert "RAY_AUTH_MODE=token" in session.TOKEN_FIX and "\n" not in session.TOKEN_FIX
