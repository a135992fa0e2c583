"""One login attempt in its own process, for the cross-process replay test.

Reads a JSON job line on stdin, prints ``ready``, waits for a ``go`` line, attempts the
login and prints the outcome as JSON.  The password and secret key come on stdin, never
on the command line.
"""

from __future__ import annotations

import json
import sys

from auth import Argon2Params, Authenticator, PasswordHasher, SecretBox, current_code
from ssgate._db import make_engine


def main() -> int:
    job = json.loads(sys.stdin.readline())
    engine = make_engine(job["url"])
    authenticator = Authenticator(
        engine, PasswordHasher(Argon2Params()), SecretBox(bytes.fromhex(job["key"]))
    )
    otp = current_code(job["secret"], job["now"])
    with engine.connect():  # open the pool's connection before the race starts
        pass
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    outcome = authenticator.authenticate(
        job["principal"], job["password"], otp, source=job["source"], now=job["now"]
    )
    print(json.dumps({"ok": outcome.ok, "reason": outcome.reason}), flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
