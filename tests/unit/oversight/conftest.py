"""What the officers' page tests share: the real staff console on a SQLite file, its
staff enrolled with TOTP, and a memory clock an hour past the enrolment."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
import gateway
from auth.testing import SynchronousRunner
from certs._schema import metadata as certs_metadata
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, enrol_staff
from ssgate._db import make_engine

STAFF_PASSWORD = "Correct-Horse-9-battery"


@dataclass
class Staffed:
    """A database with the console's schema and *members* enrolled, and the clock."""

    engine: Engine
    hasher: auth.PasswordHasher
    box: auth.SecretBox
    secrets: dict[str, str]
    clock: MemoryReactorClock

    def site(self, *, policy: auth.LockoutPolicy | None = None, **options: Any) -> Any:
        """The console site on this database; *options* go to :func:`console_site`."""
        if policy is not None:
            options["lockout"] = policy
        return console_site(
            login_form_key=bytes(range(32)),
            authenticator=auth.Authenticator(self.engine, self.hasher, self.box, policy),
            runner=SynchronousRunner(self.engine),
            workflow=None,
            clock=self.clock,
            secure=False,
            refusal_delay=0,
            **options,
        )


@contextmanager
def staffed(db: Path, members: Sequence[tuple[str, str]], *, now: float) -> Iterator[Staffed]:
    """A SQLite database at *db* with *members* (name, role) enrolled at *now*, the
    clock an hour later; the engine disposed of on the way out."""
    engine = make_engine(f"sqlite:///{db}")
    for metadata in (auth.metadata, audit.metadata, certs_metadata, gateway.metadata):
        metadata.create_all(engine)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    with engine.begin() as conn:
        secrets = enrol_staff(
            conn, list(members), password=STAFF_PASSWORD, hasher=hasher, box=box, now=now
        )
    clock = MemoryReactorClock()
    clock.advance(now + 3600)
    try:
        yield Staffed(engine, hasher, box, secrets, clock)
    finally:
        engine.dispose()


@dataclass
class ConsoleWorld:
    engine: Engine
    clock: MemoryReactorClock
    secrets: dict[str, str]
    site: Any

    def login(self, name: str) -> ConsoleClient:
        c = ConsoleClient(self.site, clock=self.clock)
        code = auth.current_code(self.secrets[name], self.clock.seconds())
        reply = c.login(name, STAFF_PASSWORD, code)
        assert reply.status == 303, reply.text
        self.clock.advance(30)  # the next login of anyone uses a fresh time-step
        return c
