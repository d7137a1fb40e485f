"""The local model server: the bundled Gemma 3 270M really answers completions, chat and embeddings over HTTP on
loopback, fails loudly with its log when it cannot start, and never outlives the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from assay.demo import ModelServer, ModelServerError, ensure_model_file
from tests.support.net import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    stat = Path(f"/proc/{pid}/stat")
    return stat.is_file() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_the_session_server_answers_completions_chat_and_embeddings(model_server: Any) -> None:
    assert model_server.base_url.startswith("http://127.0.0.1:") and model_server.base_url.endswith("/v1")
    with httpx.Client(base_url=model_server.base_url, timeout=120) as http:
        models = http.get("/models").json()
        assert model_server.model_name in [m["id"] for m in models["data"]]

        completion = http.post(
            "/completions",
            json={
                "model": model_server.model_name,
                "prompt": "The capital of France is",
                "max_tokens": 8,
                "temperature": 0,
            },
        )
        assert completion.status_code == 200, completion.text
        body = completion.json()
        assert body["object"] == "text_completion"
        assert body["choices"][0]["text"].strip()
        assert body["usage"]["completion_tokens"] == 8

        chat = http.post(
            "/chat/completions",
            json={
                "model": model_server.model_name,
                "messages": [{"role": "user", "content": "Name a colour."}],
                "max_tokens": 4,
                "temperature": 0,
            },
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["role"] == "assistant"

        embeddings = http.post(
            "/embeddings", json={"model": model_server.model_name, "input": ["red", "blue"]}
        )
        assert embeddings.status_code == 200, embeddings.text
        vectors = [item["embedding"] for item in embeddings.json()["data"]]
        assert len(vectors) == 2 and len(vectors[0]) == 640 and vectors[0] != vectors[1]


def test_chat_requests_are_rendered_in_gemmas_turn_format(model_server: Any) -> None:
    """A chat request reaches the model as Gemma turns around the user's text (once, the template's *name* was
    taken for Jinja source and every chat prompt was the literal word 'gemma')."""
    question = "What is the capital of France?"
    rendered = httpx.post(
        f"{model_server.url}/apply-template", json={"messages": [{"role": "user", "content": question}]}
    ).json()["prompt"]
    assert rendered == f"<start_of_turn>user\n{question}<end_of_turn>\n<start_of_turn>model\n"


def test_a_server_on_a_chosen_port_stops_and_frees_it(model_server: Any, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    # The session fixture already assembled the model: serve its file rather than assembling a second copy.
    server = ModelServer(
        model_path=model_server.model_path, port=port, parallel=1, embeddings=False, log_path=log
    )
    with server:
        assert server.base_url == f"http://127.0.0.1:{port}/v1"
        pid = server.pid
        assert pid is not None
        answer = httpx.post(
            f"{server.base_url}/completions",
            json={"model": server.model_name, "prompt": "1, 2, 3,", "max_tokens": 3, "temperature": 0},
            timeout=120,
        )
        assert answer.status_code == 200 and answer.json()["choices"][0]["text"]
        # Started without embeddings, the server refuses them rather than answering garbage.
        assert httpx.post(f"{server.base_url}/embeddings", json={"input": "x"}, timeout=30).status_code >= 400
    assert not _alive(pid)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    assert "stopping on SIGTERM" in log.read_text()  # a clean stop, not a kill


def test_ensure_model_file_assembles_once_atomically(tmp_path: Path) -> None:
    path = ensure_model_file(tmp_path)
    assert path.parent == tmp_path and path.suffix == ".gguf"
    assert path.read_bytes()[:4] == b"GGUF"
    written = path.stat().st_mtime_ns
    assert ensure_model_file(tmp_path) == path
    assert path.stat().st_mtime_ns == written  # reused, not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left behind

    # A truncated file (an interrupted copy by some other tool) is replaced by a whole one.
    path.write_bytes(b"GGUF truncated")
    assert ensure_model_file(tmp_path).stat().st_size > 100_000_000


def test_a_model_that_cannot_load_fails_with_the_server_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a GGUF file")
    server = ModelServer(model_path=broken, start_timeout=60)
    with pytest.raises(ModelServerError) as failure:
        server.start()
    message = str(failure.value)
    assert "exited with code" in message and "log tail" in message
    assert "broken.gguf" in message  # llama.cpp's own complaint about the file is in the tail
    assert server.pid is None


def test_the_server_exits_when_the_process_that_started_it_dies(model_server: Any) -> None:
    # A parent that is killed (no __exit__, no stop) must not leave a llama.cpp server running.
    parent = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from assay.demo import ModelServer
        server = ModelServer(model_path=Path({str(model_server.model_path)!r}), parallel=1, embeddings=False)
        server.start()
        print(server.pid, flush=True)
        os._exit(9)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", parent], cwd=REPO, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 9, result.stderr
    child = int(result.stdout.strip())
    wait_for(lambda: not _alive(child), f"process {child} to exit", timeout=30, interval=0.1)
