"""Reason codes of the secure channel, and the error that carries one.

Every end of a session, every refused login and every refused or reset stream has a
:class:`Reason`: a wire code (the ``u16`` in AUTH_FAIL, OPEN_FAIL, RESET and GOAWAY),
a slug (what the session log and the audit trail store), one plain sentence in English
and in Chinese (what ``ssgate connect`` prints), and the exit status of the client when
the reason ends its session.  ``docs/protocol.md`` §8 is the same table; a test keeps
the two identical.

Employer-facing text never says *which* login factor failed: unknown account, wrong
password, wrong or replayed one-time code all reach the client as ``auth-failed``
(:func:`for_auth_outcome` is that mapping).

:data:`REASON_WORDS` is every code the gateway records (session ends, refused logins
with the factor that failed, refused streams, how a stream ended, refused TLS
connections) in the few Chinese words staff read in a table: the officers' and the
carriers' pages both show these, so the words live with the codes.

Exit statuses: ``0`` for ``client-quit`` (the user ended the session), otherwise the
reason's wire code, so every reason has its own status and none collides with the
``1`` (refused) and ``2`` (bad usage) that the rest of the ``ssgate`` command uses.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["REASON_WORDS", "ProtocolError", "Reason", "for_auth_outcome"]


class Reason(enum.Enum):
    """One reason code; :meth:`from_code` and :meth:`from_slug` look members up."""

    _value_: int
    code: int
    slug: str
    english: str
    chinese: str
    retry_auth: bool

    def __new__(
        cls, code: int, slug: str, english: str, chinese: str, retry_auth: bool = False
    ) -> Reason:
        member = object.__new__(cls)
        member._value_ = code
        member.code = code
        member.slug = slug
        member.english = english
        member.chinese = chinese
        # Only these AUTH_FAIL reasons leave the login open for another attempt.
        member.retry_auth = retry_auth
        return member

    # -- session ends (10-19) --------------------------------------------------------
    CLIENT_QUIT = (
        10,
        "client-quit",
        "You closed the secure channel.",
        "您已关闭安全通道。",
    )
    IDLE_TIMEOUT = (
        11,
        "idle-timeout",
        "The secure channel was closed because it was idle for too long.",
        "安全通道因长时间空闲已关闭。",
    )
    MAX_LIFETIME = (
        12,
        "max-lifetime",
        "The secure channel reached its maximum connection time; please connect again.",
        "安全通道已达到最长连接时间，请重新连接。",
    )
    OFFICER_KILL = (
        13,
        "officer-kill",
        "A security officer ended this session.",
        "安全管理员已终止本次会话。",
    )
    ACCOUNT_SUSPENDED = (
        14,
        "account-suspended",
        "This account is suspended; please call the carrier.",
        "该账号已暂停使用，请联系电信运营商。",
    )
    ACCOUNT_CANCELLED = (
        15,
        "account-cancelled",
        "This account has been cancelled.",
        "该账号已注销。",
    )
    CERT_REVOKED = (
        16,
        "cert-revoked",
        "The client certificate has been revoked; please call the carrier for a new one.",
        "客户端证书已被吊销，请联系电信运营商重新签发。",
    )
    GATEWAY_SHUTDOWN = (
        17,
        "gateway-shutdown",
        "The gateway is shutting down for maintenance; please connect again later.",
        "网关正在停机维护，请稍后重新连接。",
    )
    NETWORK_LOST = (
        18,
        "network-lost",
        "The network connection to the gateway was lost.",
        "与网关的网络连接已中断。",
    )
    NODE_LOST = (
        19,
        "node-lost",
        "The gateway node serving this session stopped responding.",
        "承载本会话的网关节点已停止响应。",
    )

    # -- login (20-29) ---------------------------------------------------------------
    AUTH_FAILED = (
        20,
        "auth-failed",
        "The account, password or one-time code is not correct.",
        "账号、密码或动态口令不正确。",
        True,
    )
    TOO_MANY_ATTEMPTS = (
        21,
        "too-many-attempts",
        "Too many failed login attempts on this connection.",
        "本次连接登录失败次数过多。",
    )
    AUTH_TIMEOUT = (
        22,
        "auth-timeout",
        "Login took too long; please connect again.",
        "登录超时，请重新连接。",
    )
    LOCKED = (
        23,
        "locked",
        "This account is locked for a while after repeated failed logins; "
        "please wait and try again, or call the carrier.",
        "该账号因多次登录失败已被暂时锁定，请稍后再试或联系电信运营商。",
    )
    THROTTLED = (
        24,
        "throttled",
        "Too many failed logins came from this network address; please wait and try again.",
        "该网络地址登录失败次数过多，请稍后再试。",
    )
    TOO_MANY_SESSIONS = (
        25,
        "too-many-sessions",
        "This account already has the maximum number of open sessions.",
        "该账号的在线会话数已达上限。",
    )
    SOURCE_DENIED = (
        26,
        "source-denied",
        "This account may not connect from this network address.",
        "该账号不允许从此网络地址连接。",
    )
    RESUME_INVALID = (
        27,
        "resume-invalid",
        "The previous session can no longer be resumed; please log in again.",
        "原会话已无法恢复，请重新登录。",
        True,
    )
    GATEWAY_FULL = (
        28,
        "gateway-full",
        "The gateway is full right now; please try again in a few minutes.",
        "网关当前连接已满，请稍后再试。",
    )

    # -- streams (40-49) -------------------------------------------------------------
    SERVICE_DENIED = (
        40,
        "service-denied",
        "This account may not use the requested service.",
        "该账号无权使用所请求的服务。",
    )
    SERVICE_UNAVAILABLE = (
        41,
        "service-unavailable",
        "The requested service is not available right now; please try again later.",
        "所请求的服务暂时不可用，请稍后再试。",
    )
    TOO_MANY_STREAMS = (
        42,
        "too-many-streams",
        "Too many connections are open through the secure channel at once.",
        "通过安全通道同时打开的连接过多。",
    )
    STREAM_CANCELLED = (
        43,
        "stream-cancelled",
        "The connection was cancelled.",
        "连接已被取消。",
    )

    # -- protocol (60-69) ------------------------------------------------------------
    PROTOCOL_ERROR = (
        60,
        "protocol-error",
        "The client and the gateway could not understand each other (protocol error).",
        "客户端与网关通信出错（协议错误）。",
    )
    FRAME_TOO_LARGE = (
        61,
        "frame-too-large",
        "A message was larger than the protocol allows (protocol error).",
        "消息超出协议允许的大小（协议错误）。",
    )
    FLOW_CONTROL_ERROR = (
        62,
        "flow-control-error",
        "Data was sent faster than the receiver allowed (protocol error).",
        "发送的数据超出了接收方允许的范围（协议错误）。",
    )
    VERSION_UNSUPPORTED = (
        63,
        "version-unsupported",
        "The gateway does not support this client version; please update ssgate.",
        "网关不支持此客户端版本，请更新 ssgate。",
    )
    INTERNAL_ERROR = (
        64,
        "internal-error",
        "The gateway had an internal problem; please try again later.",
        "网关内部出错，请稍后再试。",
    )

    @property
    def exit_code(self) -> int:
        """The exit status of ``ssgate connect`` when this reason ends its session."""
        return 0 if self is Reason.CLIENT_QUIT else self.code

    @property
    def bilingual(self) -> str:
        """The line the client prints: the Chinese sentence, then the English one."""
        return f"{self.chinese} {self.english}"

    @classmethod
    def from_code(cls, code: int) -> Reason:
        """The reason with wire code *code*; ``ValueError`` if there is none."""
        try:
            return _BY_CODE[code]
        except KeyError:
            raise ValueError(f"no reason with code {code}") from None

    @classmethod
    def from_slug(cls, slug: str) -> Reason:
        """The reason whose slug is *slug*; ``ValueError`` if there is none."""
        try:
            return _BY_SLUG[slug]
        except KeyError:
            raise ValueError(f"no reason with slug {slug!r}") from None

    def __repr__(self) -> str:
        return f"<Reason {self.code} {self.slug}>"


_BY_CODE: dict[int, Reason] = {r.code: r for r in Reason}
_BY_SLUG: dict[str, Reason] = {r.slug: r for r in Reason}

# What the employer is told for each outcome of ``auth.Authenticator.authenticate``.
# Every way of getting a factor wrong collapses into one answer.  The account states
# (suspended, cancelled) are told plainly: the gateway checks that the client
# certificate is bound to the account before it authenticates, so only the holder
# of that account's certificate ever learns them.
_AUTH_OUTCOMES: dict[str, Reason] = {
    "unknown-account": Reason.AUTH_FAILED,
    "bad-password": Reason.AUTH_FAILED,
    "bad-otp": Reason.AUTH_FAILED,
    "otp-reused": Reason.AUTH_FAILED,
    "empty-password": Reason.AUTH_FAILED,
    "staff-disabled": Reason.AUTH_FAILED,
    "account-suspended": Reason.ACCOUNT_SUSPENDED,
    "account-cancelled": Reason.ACCOUNT_CANCELLED,
    "locked": Reason.LOCKED,
    "throttled": Reason.THROTTLED,
}


def for_auth_outcome(outcome: str) -> Reason:
    """The reason to send in AUTH_FAIL for a refused login with auth outcome *outcome*.

    Unknown outcomes are treated as a failed factor, never as something more telling.
    """
    if outcome == "ok":
        raise ValueError("a successful login has no refusal reason")
    return _AUTH_OUTCOMES.get(outcome, Reason.AUTH_FAILED)


# What staff read for each code (see the module docstring): short, no advice to the
# employer.  A test keeps every Reason slug and every auth outcome in it.
REASON_WORDS: Mapping[str, str] = MappingProxyType(
    {
        # session ends
        "client-quit": "单位主动断开",
        "idle-timeout": "空闲超时",
        "max-lifetime": "达到最长连接时间",
        "officer-kill": "安全员终止",
        "account-suspended": "账号已暂停",
        "account-cancelled": "账号已注销",
        "cert-revoked": "证书已吊销",
        "gateway-shutdown": "网关停机维护",
        "network-lost": "网络中断",
        "node-lost": "网关节点失联",
        # a draining node handed the session to another one (``session.move``)
        "gateway-drain": "网关节点维护，会话已转移",
        # logins: what the gateway answered, and which factor failed (the officer's view)
        "auth-failed": "账号、密码或动态口令不正确",
        "too-many-attempts": "本次连接失败次数过多",
        "auth-timeout": "登录超时",
        "locked": "账号已锁定",
        "throttled": "来源地址失败过多，已限流",
        "too-many-sessions": "在线会话数已达上限",
        "source-denied": "来源地址不在允许范围内",
        "resume-invalid": "会话已无法恢复",
        # a connection refused before any login: the process is near its open-files limit
        "gateway-full": "网关连接已满",
        "unknown-account": "账号不存在",
        "bad-password": "密码错误",
        "bad-otp": "动态口令错误",
        "otp-reused": "动态口令已使用过（重放）",
        "empty-password": "未输入密码",
        "staff-disabled": "工作人员账号已停用",
        "directory-unavailable": "目录服务不可用",
        "cert-mismatch": "客户端证书与账号不符",
        # streams
        "service-denied": "无权使用该服务",
        "service-unavailable": "服务暂时不可用",
        "too-many-streams": "同时打开的连接过多",
        "stream-cancelled": "连接已取消",
        "finished": "正常结束",
        "client-cancelled": "单位端取消",
        "service-closed": "服务端关闭",
        "session-ended": "随会话结束",
        # protocol
        "protocol-error": "协议错误",
        "frame-too-large": "消息过大（协议错误）",
        "flow-control-error": "流量控制错误（协议错误）",
        "version-unsupported": "客户端版本不受支持",
        "internal-error": "网关内部错误",
        # refused TLS connections (``tls.refused``; gateway._tls.tls_refusal_reason)
        "no-client-cert": "未出示客户端证书",
        "cert-untrusted": "证书不是本系统签发的",
        "tls-version": "TLS 版本不受支持",
        "tls-cipher": "没有共同的加密套件",
        "not-tls": "不是 TLS 连接",
        "tls-failed": "TLS 握手失败",
        "tls-timeout": "TLS 握手超时",
        "closed-before-handshake": "握手前断开",
        # an officer's kill of a session that was not open
        "not-live": "会话不在线",
    }
)


class ProtocolError(Exception):
    """The peer broke the protocol; the session ends with GOAWAY(*reason*).

    *message* says what was wrong, for the log and the GOAWAY message, and never
    repeats payload content (a malformed AUTH must not echo its password).
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason.slug}: {self.message}"
