"""Fixtures for the auth store and authenticator tests, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from auth import Argon2Params, PasswordHasher, SecretBox
from auth._schema import metadata


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The shared ``engine`` fixture (SQLite file / PostgreSQL schema) with auth tables."""
    metadata.create_all(engine)
    return engine


@pytest.fixture(scope="session")
def hasher() -> PasswordHasher:
    """The cheapest hasher the policy allows (the OWASP minimum)."""
    return PasswordHasher(Argon2Params())


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(SecretBox.generate_key())
