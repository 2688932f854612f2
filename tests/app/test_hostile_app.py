"""The Gradio app under inputs built to exhaust it: a space whose dense scoring view would take about 21 GB, 1x200 and
1x100000 PNGs and a 300 MB upload. The app runs in a child process whose address space is capped at 2 GB above
idle, so an allocation that escaped a bound fails there instead of taking the machine; the test reads the child's
peak memory, the messages it gave and a normal request it served after them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from helpers import crafted_space, png

BOUND_MB = 2048  # above idle

CHILD = textwrap.dedent(
    """
    import json, os, resource, shutil, sys
    from pathlib import Path

    import gradio as gr
    from gradio.utils import get_upload_folder

    from s3_hf.app.handlers import AppHandlers
    from s3_hf.app.settings import AppSettings
    from s3_hf.app.ui import launch, load_engine

    def vm_kb(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])

    work = Path(sys.argv[1])
    uploads = Path(get_upload_folder()) / "hostile"  # the app reads uploaded files only: these are put there
    uploads.mkdir(parents=True, exist_ok=True)
    photo, strip, long = (str(shutil.copy(work / n, uploads / n)) for n in ("photo.png", "strip.png", "long.png"))
    settings = AppSettings.from_env()  # S3_MODEL, S3_LOCAL_SPACES (the crafted space), S3_MAX_UPLOAD_MB
    engine = load_engine(settings)
    app = AppHandlers(engine, settings)
    normal = lambda: app.classify(photo, "cat, dog", "", "local_center", None, 2)[0]
    normal()  # warm: the model, the text encoder and a first request are part of idle
    idle_kb = vm_kb("VmRSS")
    limit = (vm_kb("VmSize") + int(sys.argv[3]) * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    crafted = str(work / "crafted")
    messages = {}
    calls = {
        "crafted space": lambda: app.classify(photo, "", crafted, "local_center", None, 2),
        "1x200 classify": lambda: app.classify(strip, "cat, dog", "", "local_center", None, 2),
        "1x200 segment": lambda: app.segment(strip, "cat, dog", "", "label", None, "sclip"),
        "1x100000 classify": lambda: app.classify(long, "cat, dog", "", "local_center", None, 2),
        "1x100000 segment": lambda: app.segment(long, "cat, dog", "", "label", None, "sclip"),
    }
    for name, call in calls.items():
        try:
            call()
            messages[name] = None
        except gr.Error as err:
            messages[name] = err.message
    after = normal()
    port = int(sys.argv[2])
    launch(engine, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    print(json.dumps({"messages": messages, "normal": list(after), "idle_kb": idle_kb}), flush=True)
    sys.stdin.readline()  # the parent uploads, then asks for the peak
    print(json.dumps({"peak_kb": vm_kb("VmHWM")}), flush=True)
    sys.stdin.readline()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Zeros:
    """A file of ``size`` zero bytes that is never held in memory whole."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads process memory from /proc (Linux only)")
def test_the_app_stays_bounded_and_keeps_serving(tiny_clip_dir, photos, tmp_path):
    crafted_space([1200] + [1] * 399).save_pretrained(tmp_path / "crafted")  # 400 classes, ~21 GB dense
    (tmp_path / "strip.png").write_bytes(png(1, 200))
    (tmp_path / "long.png").write_bytes(png(1, 100000))
    (tmp_path / "photo.png").write_bytes(photos[1].read_bytes())
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    port = free_port()
    env = {
        **os.environ,
        "S3_MODEL": str(tiny_clip_dir),
        "S3_LOCAL_SPACES": str(tmp_path / "crafted"),
        "HF_HUB_OFFLINE": "1",
        "S3_MAX_UPLOAD_MB": "50",
        "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
    }
    args = [sys.executable, str(script), str(tmp_path), str(port), str(BOUND_MB)]
    child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = child.stdout.readline()
        assert line, f"the app process ended: rc {child.wait()}"
        first = json.loads(line)
        messages = first["messages"]
        assert "larger than this Space accepts" in messages["crafted space"]
        for name in ("1x200 classify", "1x200 segment", "1x100000 classify", "1x100000 segment"):
            assert messages[name] and "too large or too elongated" in messages[name], name
        assert first["normal"], "a normal request after the hostile ones was served"
        # a 300 MB upload, streamed: the server refuses it and keeps only its 50 MB limit's worth at most
        response = httpx.post(
            f"http://127.0.0.1:{port}/gradio_api/upload",
            files={"files": ("big.png", Zeros(300 << 20), "image/png")},
            timeout=120,
        )
        assert response.status_code == 413, response.text[:200]
        child.stdin.write("\n")
        child.stdin.flush()
        peak_kb = json.loads(child.stdout.readline())["peak_kb"]
        assert peak_kb - first["idle_kb"] < BOUND_MB * 1024
    finally:
        child.kill()
        child.wait()


def test_a_hub_space_over_the_apps_size_is_refused_before_download(small_space, tmp_path, monkeypatch):
    """The app asks the Hub for the files' sizes first: an oversized space is refused with nothing downloaded (the
    library's download takes the same bound), and a space within it still loads."""
    from helpers import fake_hub, folder_files

    from s3_hf.app.settings import AppSettings
    from s3_hf.app.spaces import HubSpaces
    from s3_hf.errors import SpaceTooLargeError
    from s3_hf.io.hub import download

    files = folder_files(small_space.save_pretrained(tmp_path / "src"))
    big = {**files, "s3_space.safetensors": files["s3_space.safetensors"] + b"\0" * 2**20}  # valid size, 1 MB more
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    settings = AppSettings(max_space_mb=(sum(map(len, files.values())) + 2**19) / 2**20)
    spaces = HubSpaces(settings.max_space_bytes)
    with fake_hub({"org/small": files, "org/big": big}) as hub:
        with pytest.raises(SpaceTooLargeError, match="nothing was downloaded"):
            spaces.folder("org/big")
        assert not [p for m, p in hub.requests if m == "GET" and "/org/big/resolve/" in p]
        with pytest.raises(SpaceTooLargeError, match="nothing was downloaded"):
            download("org/big", list(big), max_bytes=len(big["s3_space.safetensors"]) - 1)
        assert not list((tmp_path / "cache").rglob("*.safetensors"))
        assert (Path(spaces.folder("org/small")) / "s3_space.safetensors").is_file()
