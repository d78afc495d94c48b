"""Shared test configuration: checks level 1 by default, hypothesis profiles, corpus access."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from hlo import debug_options

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("TFCOMPILE_CORPUS", REPO.parent / "shared" / "corpus"))

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _checks_level_1():
    with debug_options.override(checks=max(1, debug_options.get().checks), cache_dir=""):
        yield


def corpus_cases(part: str) -> list[dict]:
    """The manifest entries of ../shared/corpus/<part> (empty if the corpus is absent)."""
    manifest = CORPUS / part / "manifest.json"
    if not manifest.exists():
        return []
    return json.loads(manifest.read_text())["cases"]
