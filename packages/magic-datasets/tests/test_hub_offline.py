"""An offline or unreachable hub is reported at once, in one line (no real network).

Each case runs in a fresh process, because `datasets` and `huggingface_hub`
read HF_HUB_OFFLINE / HF_ENDPOINT when they are imported.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

LOAD = """
import json, time, magic_datasets as md
start = time.perf_counter()
try:
    md.load({name!r})
    message = None
except md.DatasetError as exc:
    message = str(exc)
print(json.dumps({{"message": message, "seconds": time.perf_counter() - start}}))
"""


def _load_in_fresh_process(name: str, tmp_path, **env_vars) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAGIC_DATA_DIR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                        "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), **env_vars)  # an empty Hugging Face cache
    out = subprocess.run([sys.executable, "-c", LOAD.format(name=name)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once, as with no network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_offline_mode_without_a_cached_copy_fails_at_once(variable, tmp_path):
    result = _load_in_fresh_process("wmdp-bio-robust", tmp_path, **{variable: "1"})
    message = result["message"]
    assert message.startswith("cannot load EleutherAI/wmdp_bio_robust_mcqa ")
    assert "offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)" in message
    assert "set data_dir / MAGIC_DATA_DIR" in message
    assert "unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE" in message
    assert "\n" not in message
    assert result["seconds"] < 5


def test_an_unreachable_hub_is_probed_once_instead_of_retried(tmp_path):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    result = _load_in_fresh_process("wmdp-bio-robust", tmp_path, HF_ENDPOINT=endpoint)
    message = result["message"]
    assert message.startswith("cannot load EleutherAI/wmdp_bio_robust_mcqa ")
    assert f"{endpoint} is unreachable (" in message
    assert "set data_dir / MAGIC_DATA_DIR" in message and "HF_HUB_OFFLINE=1" in message
    assert "\n" not in message
    # datasets' own retries took ~25 s here before; the probe answers in well under its 3 s.
    assert result["seconds"] < 5


def test_the_probe_counts_any_http_answer_as_reachable():
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from magic_datasets.hub.source import unreachable_reason

    class NotFound(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert unreachable_reason(f"http://127.0.0.1:{server.server_port}") is None
    finally:
        server.shutdown()
        server.server_close()
    assert "Connect" in unreachable_reason(f"http://127.0.0.1:{_closed_port()}")
