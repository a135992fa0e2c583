"""The officer benchmark's data set: a gateway's audit log and session records.

:func:`generate` writes, in chain order, what a channel of a few thousand insured
units logs over *days* days until *end*: each unit's account provisioned, channel
sessions (weighted towards a few busy units and office hours, Beijing time), each
with its login — sometimes after a mistyped password or code — declaration actions
and queries carrying the session id, now and then a network loss and a resume, a
refused stream, and its end with a reason code; refused logins outside any session
all along, and in the last day a password spraying from one address and a brute
force on one account, which is what the login failures view is for.  One session
of the busiest unit holds :data:`HEAVY_EVENTS` events (a batch import, every line
viewed and changed): the timeline the benchmark opens.

The chain is real: each row's ``prev_hash`` and ``hash`` are computed as
:func:`audit.append` computes them, so :func:`audit.verify` passes on the result;
only the inserts are batched (``executemany`` on SQLite, ``COPY`` on PostgreSQL)
instead of one transaction per event.  Everything comes from one seeded
``random.Random``: the same parameters give the same rows.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from audit._chain import GENESIS_HASH, canonical_bytes, canonical_json, digest

DAY = 86_400.0
REGION = "330682"
REALM = "sxlss"
FIRST_UNIT = 20_000_001
NODES = ("gw-a", "gw-b", "gw-c")
HEAVY_EVENTS = 900
# Audit events per unit (account) over the window: sizes the unit count, so that a
# bigger log means more employers rather than busier ones (3,030 units for 10⁶ events).
EVENTS_PER_UNIT = 330

EVENT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "subject",
    "outcome",
    "reason",
    "unit",
    "session_id",
    "details",
    "prev_hash",
    "hash",
)
SESSION_COLUMNS = (
    "id",
    "account",
    "unit_code",
    "peer",
    "cert_serial",
    "node",
    "status",
    "started_at",
    "last_seen_at",
    "ended_at",
    "end_reason",
    "bytes_in",
    "bytes_out",
    "streams_opened",
    "resume_generation",
    "kill_requested_at",
    "kill_reason",
    "kill_note",
    "kill_actor",
)

# (action, weight) of what an employer does inside a session
_ACTIONS = (
    ("declare.list", 30),
    ("declare.view", 25),
    ("declare.query.enrolments", 12),
    ("declare.query.contributions", 8),
    ("declare.create", 10),
    ("declare.update", 8),
    ("declare.submit", 6),
    ("declare.withdraw", 1),
)
_ENDS = (
    ("client-quit", 70),
    ("idle-timeout", 20),
    ("max-lifetime", 4),
    ("network-lost", 4),
    ("officer-kill", 1),
    ("account-suspended", 1),
)
_REFUSED = (
    ("bad-password", 50),
    ("bad-otp", 30),
    ("otp-reused", 5),
    ("locked", 5),
    ("unknown-account", 5),
    ("cert-mismatch", 3),
    ("throttled", 2),
)
# Office hours in Beijing (UTC+8): the hour of day (UTC) a session starts, weighted.
_HOURS_UTC = [(h, 10 if 0 <= h <= 9 else 1) for h in range(24)]


def _choices(pairs: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    """(names, weights) for ``random.choices``."""
    return [p[0] for p in pairs], [p[1] for p in pairs]


@dataclass(frozen=True)
class Params:
    events: int
    days: int
    end: float
    seed: int

    @property
    def units(self) -> int:
        return max(20, self.events // EVENTS_PER_UNIT)

    @property
    def sources(self) -> int:
        return max(5, self.units // 10)

    @property
    def start(self) -> float:
        return self.end - self.days * DAY


@dataclass
class Landmarks:
    """What the measurements look up (the busiest unit, the longest and a typical
    session) and what the report says about the data set (counts, the attacks)."""

    busy_unit: str = ""
    busy_unit_host: str = ""
    heavy_session: str = ""
    typical_session: str = ""
    spray_host: str = ""
    brute_account: str = ""
    sessions: int = 0
    events: int = 0
    failed_logins_last_day: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def account_of(unit: str) -> str:
    return f"{REGION}{unit}@{REALM}"


class _Events:
    """Events waiting for their place in the chain, released in time order once
    nothing generated later can come before them."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, tuple[object, ...]]] = []
        self._n = 0

    def add(self, *row: object) -> None:
        """One event: at, actor, action, subject, outcome, reason, unit, session id,
        details (a dict)."""
        self._n += 1
        heapq.heappush(self._heap, (float(row[0]), self._n, row))  # type: ignore[arg-type]

    def release(self, before: float) -> Iterator[tuple[object, ...]]:
        while self._heap and self._heap[0][0] < before:
            yield heapq.heappop(self._heap)[2]


class _Channel:
    """The channel's life over the window: who dials in from where, and what they do."""

    def __init__(self, p: Params, marks: Landmarks) -> None:
        self.p = p
        self.marks = marks
        rng = self.rng = random.Random(p.seed)
        self.units = units = [str(FIRST_UNIT + i) for i in range(p.units)]
        self.hosts = hosts = [
            f"10.{20 + i // 250}.{i % 250}.{1 + (i * 7) % 250}" for i in range(p.sources)
        ]
        # A unit dials in from its office (sometimes a second one); units share offices.
        self.home = {u: rng.choice(hosts) for u in units}
        self.other = {u: rng.choice(hosts) for u in units}
        # Activity follows a long tail: a few large employers, many small ones.
        self.weights = [1.0 / (i + 1) ** 0.8 for i in range(len(units))]
        marks.busy_unit = units[0]
        marks.busy_unit_host = self.home[units[0]]
        marks.spray_host = "203.0.113.66"
        marks.brute_account = account_of(units[len(units) // 3])
        self.serial = {u: f"{rng.getrandbits(64):016X}" for u in units}
        self.pending = _Events()
        self.sessions: list[tuple[object, ...]] = []
        self.seq = 0
        self.prev = GENESIS_HASH

    # -- the chain -------------------------------------------------------------------

    def emit(self, before: float) -> Iterator[tuple[str, tuple[object, ...]]]:
        """The pending events before *before*, as chained rows."""
        marks = self.marks
        last_day_start = self.p.end - DAY
        for at, actor, action, subject, outcome, reason, unit, sid, det in self.pending.release(
            before
        ):
            self.seq += 1
            details = canonical_json(det)
            h = digest(
                canonical_bytes(
                    seq=self.seq,
                    at=float(at),  # type: ignore[arg-type]
                    actor=str(actor),
                    action=str(action),
                    subject=str(subject),
                    outcome=str(outcome),
                    reason=str(reason),
                    unit=str(unit),
                    session_id=str(sid),
                    details_json=details,
                    prev_hash=self.prev,
                )
            )
            marks.counts[str(action)] = marks.counts.get(str(action), 0) + 1
            if action == "login" and outcome != "ok" and float(at) >= last_day_start:  # type: ignore[arg-type]
                marks.failed_logins_last_day += 1
            row = (self.seq, at, actor, action, subject, outcome, reason, unit, sid, details)
            yield "event", (*row, self.prev, h)
            self.prev = h
        marks.events = self.seq

    # -- what happens ------------------------------------------------------------------

    def port(self) -> int:
        return self.rng.randrange(1024, 65535)

    def refused_login(self, at: float, account: str, host: str, reason: str, cert: str) -> None:
        details = {"peer": f"{host}:{self.port()}", "certificate": cert or "-"}
        self.pending.add(
            at, f"channel:{account}", "login", account, "refused", reason, "", "", details
        )

    def session(self, at: float, unit: str, *, actions_n: int, heavy: bool = False) -> int:
        """A session of *unit* starting at *at*; how many events it logged."""
        rng, add = self.rng, self.pending.add
        account = account_of(unit)
        host = self.home[unit] if rng.random() < 0.9 else self.other[unit]
        peer = f"{host}:{self.port()}"
        sid = f"{rng.getrandbits(128):032x}"
        actor = f"channel:{account}"
        n = 0
        details = {"peer": peer, "certificate": self.serial[unit]}
        if rng.random() < 0.08:  # a mistyped password or code first, same connection
            reason = rng.choices(["bad-password", "bad-otp"], [2, 1])[0]
            add(
                at - rng.uniform(5, 50), actor, "login", account, "refused", reason, "", "", details
            )
            n += 1
        add(at, actor, "login", account, "ok", "", unit, sid, details)
        n += 1
        t = at
        resumed = 0
        for _ in range(actions_n):
            t += rng.expovariate(1 / (8 if heavy else 40)) + 1
            action = "declare.view" if heavy and rng.random() < 0.5 else rng.choices(*_ACTIONS_W)[0]
            subject = f"D{rng.randrange(10**9):09d}" if action != "declare.list" else "-"
            what = {"declaration": subject} if subject != "-" else {"limit": 50, "offset": 0}
            add(t, actor, action, subject, "ok", "", unit, sid, what)
            n += 1
        if rng.random() < 0.04:
            t += rng.uniform(1, 30)
            add(t, actor, "session.detach", account, "ok", "network-lost", unit, sid, details)
            t += rng.uniform(5, 60)
            add(t, actor, "login.resume", account, "ok", "", unit, sid, details)
            resumed = 1
            n += 2
        if rng.random() < 0.01:
            t += rng.uniform(1, 30)
            add(
                t,
                actor,
                "stream.refused",
                account,
                "refused",
                "service-denied",
                unit,
                sid,
                {**details, "service": "admin"},
            )
            n += 1
        end_reason = rng.choices(*_ENDS_W)[0]
        t += rng.uniform(10, 1800) if end_reason != "idle-timeout" else 900.0
        live = t > self.p.end
        if not live and end_reason != "network-lost":  # a reaped session logs no end
            add(t, actor, "session.end", account, "ok", end_reason, unit, sid, details)
            n += 1
        streams = actions_n + rng.randrange(1, 4)
        self.sessions.append((
            sid, account, unit, peer, self.serial[unit], rng.choice(NODES),
            "live" if live else "ended", at, min(t, self.p.end), None if live else t,
            None if live else end_reason, streams * rng.randrange(2_000, 60_000),
            streams * rng.randrange(10_000, 400_000), streams, resumed, None, None, None, None,
        ))  # fmt: skip
        if heavy:
            self.marks.heavy_session = sid
        elif actions_n >= 5:
            self.marks.typical_session = sid  # the last such session: a recent one
        return n

    def attacks(self, day_start: float) -> int:
        """The last day's password spraying and brute force; how many events."""
        rng, made = self.rng, 0
        t = day_start + 14 * 3600
        victims = [account_of(u) for u in rng.sample(self.units, min(300, len(self.units)))]
        for _round in range(3):
            for v in victims:
                t += rng.uniform(0.5, 4)
                self.refused_login(t, v, self.marks.spray_host, "bad-password", "")
                made += 1
        t = day_start + 3 * 3600
        for _ in range(200):
            t += rng.uniform(2, 30)
            reason = rng.choices(["bad-password", "locked"], [1, 3])[0]
            self.refused_login(t, self.marks.brute_account, "198.51.100.23", reason, "")
            made += 1
        return made

    def background(self, day_start: float) -> int:
        """One more thing on an ordinary day; how many events."""
        rng = self.rng
        if rng.random() < 0.03:  # a refused login with no session: typos, strangers
            u = rng.choices(self.units, self.weights)[0]
            at = day_start + rng.uniform(0, DAY)
            reason = rng.choices(*_REFUSED_W)[0]
            host = rng.choice(self.hosts) if rng.random() < 0.3 else self.home[u]
            self.refused_login(at, account_of(u), host, reason, self.serial[u])
            return 1
        unit = rng.choices(self.units, self.weights)[0]
        hour = rng.choices(*_HOURS_W)[0]
        at = day_start + hour * 3600 + rng.uniform(0, 3600)
        made = self.session(at, unit, actions_n=min(int(rng.expovariate(1 / 4)), 60))
        if rng.random() < 0.002:  # a carrier's action on an account now and then
            u = rng.choice(self.units)
            action = rng.choice(
                [
                    "provision.reset-password",
                    "provision.reset-otp",
                    "provision.suspend",
                    "provision.resume",
                ]
            )
            self.pending.add(
                at + 1, "staff:carl", action, account_of(u), "ok", "", u, "", {"source": "10.1.0.5"}
            )
            made += 1
        return made


_ACTIONS_W = _choices(_ACTIONS)
_ENDS_W = _choices(_ENDS)
_REFUSED_W = _choices(_REFUSED)
_HOURS_W = ([h for h, _ in _HOURS_UTC], [w for _, w in _HOURS_UTC])


def generate(p: Params, marks: Landmarks) -> Iterator[tuple[str, tuple[object, ...]]]:
    """``("event", row)`` in chain order (``row`` per :data:`EVENT_COLUMNS`, hashes
    included) and ``("session", row)`` per :data:`SESSION_COLUMNS`, about
    ``p.events`` events in all."""
    channel = _Channel(p, marks)
    # The carrier opened every account in the first days (before the window starts,
    # when the gateway began logging).
    for i, u in enumerate(channel.units):
        at = p.start + i * (2 * DAY / len(channel.units))
        details = {"certificate": channel.serial[u], "source": "10.1.0.5"}
        channel.pending.add(
            at, "staff:carl", "provision.open", account_of(u), "ok", "", u, "", details
        )
    per_day = (p.events - len(channel.units)) / p.days
    made = 0
    for day in range(p.days):
        day_start = p.start + day * DAY
        if day == p.days - 3:
            made += channel.session(
                day_start + 2.5 * 3600, channel.units[0], actions_n=HEAVY_EVENTS - 2, heavy=True
            )
        if day == p.days - 1:
            made += channel.attacks(day_start)
        while made < per_day * (day + 1):
            made += channel.background(day_start)
        # Nothing generated from tomorrow on starts before tomorrow minus a minute.
        yield from channel.emit(day_start + DAY - 600)
        for row in channel.sessions:
            yield "session", row
        marks.sessions += len(channel.sessions)
        channel.sessions.clear()
    yield from channel.emit(float("inf"))
