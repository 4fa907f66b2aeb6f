"""Fixtures for the handler tests: the form engine and the in-memory store."""

from __future__ import annotations

import pytest

from cadrebot.handlers.forms import FormEngine, default_registry

from .fakes import InMemoryStore
from .helpers import IDLE


@pytest.fixture
def engine() -> FormEngine:
    return FormEngine(default_registry(), idle_timeout=IDLE)


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()
