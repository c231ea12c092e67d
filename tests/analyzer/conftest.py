"""One embedded store per test session (chDB allows one directory per process); a fresh database per test."""

from __future__ import annotations

import itertools

import pytest
from modelwatch_analyzer.store import schema
from modelwatch_analyzer.store.client import Store

_counter = itertools.count()


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def store(store_dir):
    """A Store on a database of its own, with the schema applied."""
    st = Store(f"chdb://{store_dir}", database=f"t{next(_counter)}")
    schema.apply(st)
    yield st
    st.command(f"DROP DATABASE IF EXISTS `{st.database}`")
