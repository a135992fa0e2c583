"""The gateway's public face: ``gateway.__all__``, the policy view and the channel portal,
and ``ssgate`` reaching the gateway only through that face."""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import Engine
from twisted.cred.portal import Portal

import gateway
from auth.testing import SynchronousRunner
from gateway._cred import IChannelCredentials
from ssgate._config import AccountPolicy, PolicyConfig

SSGATE = Path(gateway.__file__).parent.parent / "ssgate"


def test_every_public_name_resolves() -> None:
    assert sorted(gateway.__all__) == sorted(set(gateway.__all__))
    for name in gateway.__all__:
        assert getattr(gateway, name) is not None, name


def test_ssgate_imports_only_the_public_face_of_the_gateway() -> None:
    private: list[str] = []
    for path in sorted(SSGATE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [a.name for a in node.names]
                if node.module.startswith("gateway.") or (
                    node.module == "gateway" and any(n.startswith("_") for n in names)
                ):
                    private.append(f"{path.name}:{node.lineno} from {node.module}")
            elif isinstance(node, ast.Import):
                private += [
                    f"{path.name}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name.startswith("gateway.")
                ]
    assert private == []


def test_the_policy_view_copies_each_accounts_configured_policy() -> None:
    special = AccountPolicy(
        max_sessions=1,
        idle_timeout_seconds=60.0,
        max_lifetime_seconds=600.0,
        allowed_sources=("10.20.30.0/24",),
        services=("declare", "query"),
    )
    policy_for = gateway.policy_view(
        PolicyConfig(accounts={"33068212345678@sxlss": special}).for_account
    )
    view = policy_for("33068212345678@sxlss")
    assert view == gateway.AccountPolicyView(
        max_sessions=1,
        allowed_sources=("10.20.30.0/24",),
        services=("declare", "query"),
        idle_timeout_seconds=60.0,
        max_lifetime_seconds=600.0,
    )
    assert policy_for("33068299999999@sxlss").max_sessions == AccountPolicy().max_sessions


def test_the_channel_portal_checks_channel_credentials(sqlite_engine: Engine) -> None:
    portal = gateway.channel_portal(
        authenticator=None,  # type: ignore[arg-type]  # not reached: nothing logs in here
        runner=SynchronousRunner(sqlite_engine),
        policy_for=gateway.policy_view(PolicyConfig().for_account),
        clock=lambda: 0.0,
        node_name="test-node",
    )
    assert isinstance(portal, Portal)
    assert portal.listCredentialsInterfaces() == [IChannelCredentials]
