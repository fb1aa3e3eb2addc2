"""The suite runs with its own home and cache folders (see conftest.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from conftest import REAL_CACHE
from infomtl.data.paths import default_cache_root
from infomtl.modeling.feature_cache import default_cache_dir


def test_caches_resolve_inside_the_suites_temporary_home() -> None:
    home = Path(os.environ["HOME"])
    assert home.is_relative_to(Path(tempfile.gettempdir()))
    assert default_cache_dir().is_relative_to(home)
    assert default_cache_root().is_relative_to(home)
    assert not default_cache_dir().is_relative_to(REAL_CACHE)
