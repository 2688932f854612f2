"""Whole-folder writes (s3_hf.io.files.write_files): the temporary files that killed writers leave are removed by the
next write, and only theirs: a live writer's, a folder, and the user's own files stay."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from s3_hf.io import files as fileio

KILLED_WRITE = """
import os, signal, sys
from s3_hf.io.files import write_files

def write(path):
    path.write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)

write_files(sys.argv[1], {"results.json": write})
"""


def killed_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_write_files_removes_the_temporary_files_of_killed_writers_only(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "results.json").write_text("old")
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(folder)], capture_output=True, check=False)
    assert killed.returncode == -9
    left = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".results.json.")  # what a kill leaves

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live_tmp = folder / f".cache.json.{live.pid}-{fileio._HOST}-0123abcd.tmp"  # a write still under way
        live_tmp.write_text("in progress")
        legacy = folder / ".old.json.k3_9zq1x.tmp"  # an older s3-hf's temp name: removed by age alone
        legacy.write_text("x")
        hour_ago = time.time() - 2 * 3600
        os.utime(legacy, (hour_ago, hour_ago))
        recent_legacy = folder / ".new.json.a1b2c3d4.tmp"
        recent_legacy.write_text("x")
        dead_dir = folder / f".space.{killed_pid()}-{fileio._HOST}-0123abcd.tmp"  # not a file: left alone
        dead_dir.mkdir()
        user = [folder / "notes.tmp", folder / ".notes.tmp", folder / "notes.txt"]
        for p in user:
            p.write_text("mine")

        fileio.write_files(folder, {"results.json": lambda p: p.write_text("new")})

        remaining = {p.name for p in folder.iterdir()}
        assert left[0] not in remaining and legacy.name not in remaining
        assert {live_tmp.name, recent_legacy.name, dead_dir.name, *(p.name for p in user)} <= remaining
        assert (folder / "results.json").read_text() == "new" and live_tmp.read_text() == "in progress"
    finally:
        live.kill()
        live.wait()
