"""The authentication server without I/O: a datagram in, a step out.

:class:`AccessServer` takes each datagram with its source and the time, and says what
to do: :class:`Drop` it (with a reason code, counted), :class:`Send` bytes back, or
:class:`Evaluate` a login attempt.  Evaluating (password hashing, the database) is not
done here: the caller does it off the reactor and hands the verdict back to
:meth:`AccessServer.accept` or :meth:`AccessServer.reject`, which return the reply.

What it enforces, in this order, before any work on the account:

1. the source address names a configured NAS (else ``unknown-nas``);
2. the packet is well formed and bounded (:func:`radius._wire.scan_request`);
3. it is an Access-Request (or a Status-Server, RFC 5997, which is answered with a
   signed Access-Accept at once and must carry a Message-Authenticator);
4. a Message-Authenticator is present when the NAS must send one (all by default,
   after BlastRADIUS) and is valid whenever present;
5. duplicates (same NAS, port, identifier and Request Authenticator within
   ``duplicate_window`` seconds) get the cached reply without a second evaluation; the
   same Request Authenticator in another packet within the window is a replay, dropped.

Then PAP: ``User-Password`` is the password followed by the 6-digit code, or the
password alone, answered by an Access-Challenge whose ``State`` brings the code back
in a second request (the pending password is kept in memory for
``challenge_timeout`` seconds at most, never logged).

Memory is bounded: at most ``max_tracked`` requests remembered and ``max_challenges``
challenges pending; beyond that new requests are dropped as ``busy``.
"""

from __future__ import annotations

import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from radius._nas import NasClient, NasDirectory
from radius._packets import decode_request, encode_reply, message_authenticator_valid
from radius._recent import BUSY, DUPLICATE_PENDING, RecentRequests
from radius._wire import (
    ACCESS_ACCEPT,
    ACCESS_CHALLENGE,
    ACCESS_REJECT,
    ACCESS_REQUEST,
    CALLING_STATION_ID,
    NAS_PORT,
    STATE,
    USER_NAME,
    USER_PASSWORD,
    MalformedPacket,
    ScannedPacket,
    decode_text,
    decrypt_user_password,
    scan_request,
)

OTP_DIGITS = 6
STATUS_SERVER = 12
STATE_BYTES = 16

# Drop reasons (also the counters' names).
UNKNOWN_NAS = "unknown-nas"
NOT_ACCESS_REQUEST = "not-access-request"
NO_MESSAGE_AUTHENTICATOR = "no-message-authenticator"
BAD_MESSAGE_AUTHENTICATOR = "bad-message-authenticator"
BAD_USER_NAME = "bad-user-name"
UNDECODABLE_PASSWORD = "undecodable-password"  # noqa: S105 - a reason code

# Drops that are the protocol working as designed: counted, never logged.
QUIET_DROPS = frozenset({DUPLICATE_PENDING})

# Refusals decided here, before any account work (audited like the others).
UNSUPPORTED_METHOD = "unsupported-method"
CHALLENGE_UNKNOWN = "challenge-unknown"

CHALLENGE_MESSAGE = "请输入6位动态口令 / Enter your 6-digit one-time code"
REJECT_MESSAGE = "登录失败 / Login failed"


@dataclass(frozen=True)
class Drop:
    """Send nothing.  ``nas`` is the NAS name when the source is a known one."""

    reason: str
    host: str
    nas: str | None = None


@dataclass(frozen=True)
class Send:
    """Send *data* back to the source (a cached reply or a challenge)."""

    data: bytes = field(repr=False)
    code: int


@dataclass(frozen=True)
class Attempt:
    """A login to evaluate.  ``refusal`` is set when the request is refused already
    (no PAP password, an unknown challenge): nothing is to be checked, only audited."""

    nas: NasClient
    source: tuple[str, int]
    account: str
    password: str = field(repr=False)
    otp: str = field(repr=False)
    calling_station: str | None
    nas_port: int | None
    challenged: bool
    refusal: str | None = None
    key: tuple[str, bytes] = field(default=("", b""), repr=False)
    request: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Evaluate:
    attempt: Attempt


Step = Drop | Send | Evaluate


class _Dropped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Received:
    """A verified Access-Request and where it came from."""

    nas: NasClient
    source: tuple[str, int]
    scanned: ScannedPacket = field(repr=False)
    request: Any = field(repr=False)
    key: tuple[str, bytes]

    def attempt(
        self,
        account: str,
        password: str,
        otp: str,
        *,
        challenged: bool = False,
        refusal: str | None = None,
    ) -> Evaluate:
        port = self.scanned.first(NAS_PORT)
        return Evaluate(
            Attempt(
                nas=self.nas,
                source=self.source,
                account=account,
                password=password,
                otp=otp,
                calling_station=decode_text(self.scanned.first(CALLING_STATION_ID), limit=64),
                nas_port=int.from_bytes(port) if port is not None and len(port) == 4 else None,
                challenged=challenged,
                refusal=refusal,
                key=self.key,
                request=self.request,
            )
        )


@dataclass(frozen=True)
class _Challenge:
    nas: str
    account: str
    password: str = field(repr=False)
    expires: float


class AccessServer:
    """Sans-IO RADIUS authentication (RFC 2865 PAP, RFC 3579 Message-Authenticator)."""

    def __init__(
        self,
        nas: NasDirectory,
        *,
        random: Callable[[int], bytes] = secrets.token_bytes,
        duplicate_window: float = 30.0,
        challenge_timeout: float = 60.0,
        max_tracked: int = 16384,
        max_challenges: int = 4096,
    ) -> None:
        self._nas = nas
        self._random = random
        self._challenge_timeout = challenge_timeout
        self._max_challenges = max_challenges
        self._recent = RecentRequests(window=duplicate_window, limit=max_tracked)
        self._challenges: OrderedDict[bytes, _Challenge] = OrderedDict()
        self.drops: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"AccessServer({self._nas!r}, tracked={len(self._recent)}, "
            f"challenges={len(self._challenges)})"
        )

    @property
    def tracked(self) -> int:
        return len(self._recent)

    @property
    def pending_challenges(self) -> int:
        return len(self._challenges)

    # -- receiving -----------------------------------------------------------------------

    def receive(self, data: bytes, source: tuple[str, int], now: float) -> Step:
        host, port = source
        nas = self._nas.for_source(host)
        if nas is None:
            return self._drop(UNKNOWN_NAS, host)
        try:
            received = self._verified(data, nas, source)
        except _Dropped as e:
            return self._drop(e.reason, host, nas)
        if received.scanned.code == STATUS_SERVER:
            # RFC 5997: "alive", signed; never cached, never evaluated.
            return Send(encode_reply(received.request, ACCESS_ACCEPT), ACCESS_ACCEPT)
        self._expire_challenges(now)
        earlier = self._seen_before(received, port, now)
        if earlier is not None:
            return earlier
        try:
            step = self._login(received, now)
        except _Dropped as e:
            self._recent.forget(received.key)
            return self._drop(e.reason, host, nas)
        if isinstance(step, Send):
            self._recent.answer(received.key, step.data)
        return step

    def _seen_before(self, received: _Received, port: int, now: float) -> Step | None:
        """A retransmission's cached reply, a drop (replay, pending, busy), or None for
        a new request (now remembered)."""
        seen = self._recent.look(
            received.key,
            port=port,
            identifier=received.scanned.identifier,
            packet=received.scanned.packet,
            now=now,
        )
        if seen.refusal is not None:
            return self._drop(seen.refusal, received.source[0], received.nas)
        if seen.reply is not None:
            return Send(seen.reply, seen.reply[0])
        return None

    def _verified(self, data: bytes, nas: NasClient, source: tuple[str, int]) -> _Received:
        """The request if it is a well-formed Access-Request that this NAS signed as its
        entry requires; :class:`_Dropped` otherwise."""
        try:
            scanned = scan_request(data)
        except MalformedPacket as e:
            raise _Dropped(e.reason) from None
        if scanned.code not in (ACCESS_REQUEST, STATUS_SERVER):
            raise _Dropped(NOT_ACCESS_REQUEST)
        must_sign = nas.require_message_authenticator or scanned.code == STATUS_SERVER
        if not scanned.has_message_authenticator and must_sign:
            raise _Dropped(NO_MESSAGE_AUTHENTICATOR)
        try:
            request = decode_request(scanned, nas.secret)
        except MalformedPacket as e:
            raise _Dropped(e.reason) from None
        if scanned.has_message_authenticator and not message_authenticator_valid(request):
            raise _Dropped(BAD_MESSAGE_AUTHENTICATOR)
        return _Received(
            nas=nas,
            source=source,
            scanned=scanned,
            request=request,
            key=(nas.name, scanned.authenticator),
        )

    def _login(self, received: _Received, now: float) -> Step:
        scanned, nas = received.scanned, received.nas
        account = decode_text(scanned.first(USER_NAME))
        if account is None:
            raise _Dropped(BAD_USER_NAME)
        hidden = scanned.first(USER_PASSWORD)
        if hidden is None:
            # CHAP, EAP or nothing at all: none can carry password + code to an
            # argon2 hash, so each is refused (and audited), never evaluated.
            return received.attempt(account, "", "", refusal=UNSUPPORTED_METHOD)
        typed = decrypt_user_password(
            hidden, secret=nas.secret, authenticator=scanned.authenticator
        )
        if typed is None:
            raise _Dropped(UNDECODABLE_PASSWORD)

        state = scanned.first(STATE)
        if state is not None:
            pending = self._challenges.pop(state, None)
            if pending is None or pending.nas != nas.name or pending.account != account:
                return received.attempt(account, "", "", challenged=True, refusal=CHALLENGE_UNKNOWN)
            return received.attempt(account, pending.password, typed, challenged=True)

        password, otp = split_password_and_code(typed)
        if otp or not password:
            return received.attempt(account, password, otp)
        return self._challenge(received, account, password, now)

    def _challenge(self, received: _Received, account: str, password: str, now: float) -> Send:
        """Keep the password for a while and ask for the code (RFC 2865 §4.4)."""
        if len(self._challenges) >= self._max_challenges:
            raise _Dropped(BUSY)
        token = self._random(STATE_BYTES)
        self._challenges[token] = _Challenge(
            received.nas.name, account, password, now + self._challenge_timeout
        )
        reply = encode_reply(
            received.request,
            ACCESS_CHALLENGE,
            [("State", token), ("Reply-Message", CHALLENGE_MESSAGE)],
        )
        return Send(reply, ACCESS_CHALLENGE)

    # -- answering -----------------------------------------------------------------------

    def accept(
        self,
        attempt: Attempt,
        *,
        session_id: str,
        session_timeout: int,
        idle_timeout: int,
    ) -> bytes:
        """The Access-Accept: ``Class`` = the session id, the policy's timeouts."""
        reply = encode_reply(
            attempt.request,
            ACCESS_ACCEPT,
            [
                ("Class", session_id.encode("ascii")),
                ("Session-Timeout", session_timeout),
                ("Idle-Timeout", idle_timeout),
            ],
        )
        return self._answered(attempt, reply)

    def reject(self, attempt: Attempt) -> bytes:
        """The Access-Reject; it never says which factor was wrong."""
        reply = encode_reply(attempt.request, ACCESS_REJECT, [("Reply-Message", REJECT_MESSAGE)])
        return self._answered(attempt, reply)

    def abandon(self, attempt: Attempt) -> None:
        """No answer (the evaluation failed): a retransmission is evaluated afresh."""
        self._recent.forget(attempt.key)

    def _answered(self, attempt: Attempt, reply: bytes) -> bytes:
        self._recent.answer(attempt.key, reply)
        return reply

    # -- housekeeping --------------------------------------------------------------------

    def _drop(self, reason: str, host: str, nas: NasClient | None = None) -> Drop:
        self.drops[reason] += 1
        return Drop(reason, host, None if nas is None else nas.name)

    def _expire_challenges(self, now: float) -> None:
        while self._challenges:
            token, challenge = next(iter(self._challenges.items()))
            if challenge.expires > now:
                break
            del self._challenges[token]


def split_password_and_code(typed: str) -> tuple[str, str]:
    """(password, code) from what was typed: the last six characters are the code when
    they are six ASCII digits and something comes before them; else (typed, "").

    A password that itself ends in six digits must therefore always be sent with the
    code appended: the challenge flow cannot tell it from password + code.
    """
    tail = typed[-OTP_DIGITS:]
    if len(typed) > OTP_DIGITS and tail.isascii() and tail.isdigit():
        return typed[:-OTP_DIGITS], tail
    return typed, ""
