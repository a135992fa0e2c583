"""A real :class:`~staffing.StaffAdministration` on a test database, for the tests of
the workflows, the ``ssgate staff`` command and the console pages."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

import auth
from staffing._workflows import StaffAdministration, StaffSettings

TOTP_ISSUER = "ssgate-test"


def make_staff_admin(
    engine: Engine,
    *,
    clock: Callable[[], float],
    hasher: auth.PasswordHasher,
    box: auth.SecretBox,
    actor: str = "os:tester",
    passwords_in_directory: bool = False,
) -> StaffAdministration:
    """The workflows on *engine* (with the auth and audit tables), acting as *actor*."""
    return StaffAdministration(
        engine=engine,
        box=box,
        hasher=hasher,
        settings=StaffSettings(
            totp_issuer=TOTP_ISSUER, passwords_in_directory=passwords_in_directory
        ),
        clock=clock,
        actor=actor,
    )
