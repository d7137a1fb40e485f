"""The shipped system catalogue is valid, and the hub reloads it when the files change."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from assay.store import default_config_dir, load_catalogue_dir
from tests.conftest import FIXTURES, REPO
from tests.support.waiting import wait_for


def test_shipped_catalogue_is_valid_and_complete() -> None:
    loaded = load_catalogue_dir(REPO / "config")
    assert loaded.problems == []
    providers = {str(p.id): p for p in loaded.providers}
    assert set(providers) == {"lm_evaluation_harness", "lighteval", "guidellm", "garak", "mteb", "inspect_ai"}
    for provider in providers.values():
        for benchmark in provider.benchmarks:
            score = benchmark.primary_score
            assert score is not None and score.scale is not None, f"{provider.id}/{benchmark.id} has no scale"
            assert score.metric in benchmark.metrics
    assert {"arc_easy", "hellaswag", "mmlu", "gsm8k"} <= {
        b.id for b in providers["lm_evaluation_harness"].benchmarks
    }
    assert providers["garak"].benchmarks[0].primary_score.lower_is_better  # type: ignore[union-attr]
    assert len(loaded.collections) >= 5
    assert default_config_dir() == REPO / "config"


def test_a_broken_file_is_skipped_and_named(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "catalogue", tmp_path, dirs_exist_ok=True)
    (tmp_path / "providers" / "broken.yaml").write_text(
        "id: broken\nname: Broken\nbenchmarks: []\nbogus: 1\n"
    )
    (tmp_path / "collections" / "dangling.yaml").write_text(
        "id: dangling\nname: D\ncategory: c\nbenchmarks: [{id: nope, provider_id: demo}]\n"
    )
    (tmp_path / "providers" / "garbage.yaml").write_text("id: [unclosed\n")
    loaded = load_catalogue_dir(tmp_path)
    assert [str(p.id) for p in loaded.providers] == ["demo"]
    assert [str(c.id) for c in loaded.collections] == ["demo-suite"]
    assert sorted(p.split(":")[0] for p in loaded.problems) == [
        "broken.yaml",
        "dangling.yaml",
        "garbage.yaml",
    ]
    assert any("bogus: unknown field" in p for p in loaded.problems)


def test_hub_reloads_when_files_change(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "catalogue", tmp_path, dirs_exist_ok=True)
    client = make_client(config_dir=tmp_path, config_reload=True)
    provider_file = tmp_path / "providers" / "demo.yaml"
    created_at = client.get("/api/v1/evaluations/providers/demo").json()["resource"]["created_at"]

    provider_file.write_text(
        provider_file.read_text().replace("A tiny provider the tests use.", "Edited on disk.")
    )
    wait_for(
        lambda: (
            client.get("/api/v1/evaluations/providers/demo").json().get("description") == "Edited on disk."
        )
    )
    # An edit keeps the row's identity and creation time.
    assert client.get("/api/v1/evaluations/providers/demo").json()["resource"]["created_at"] == created_at

    (tmp_path / "collections" / "demo-suite.yaml").unlink()
    wait_for(lambda: client.get("/api/v1/evaluations/collections/demo-suite").status_code == 404)
    assert client.get("/api/v1/evaluations/collections").json()["total_count"] == 0
