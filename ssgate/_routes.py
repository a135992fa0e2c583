"""Both sites' route tables, as ``ssgate routes`` prints them and the sweeps walk them.

The tables are built exactly as ``serve`` builds them (the console from the same
sections), only with collaborators that refuse to be used: listing routes never
touches the database, the state directory or the network.
"""

from __future__ import annotations

from typing import Any

import web
from declare_app.web import EMPLOYER_ROUTES
from ssgate._console import console_shell


class _NotServing:
    """Stands in for the authenticator, runner and workflow of a console that is
    only being listed."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a console built only to list routes cannot {name}")


def console_table() -> web.RouteTable:
    """The staff console's routes with every section ``serve`` mounts."""
    idle: Any = _NotServing()
    shell = console_shell(
        authenticator=idle,
        runner=idle,
        workflow=idle,
        provisioner=idle,
        staff_admin=idle,
        person_counter=idle,
        clock=idle,
        secure=True,
        login_form_key=bytes(32),  # never used: nothing is served
    )
    return shell.table


def portal_table() -> web.RouteTable:
    """The personal portal's routes (``[portal] listen``)."""
    import portal

    idle: Any = _NotServing()
    shell = portal.PortalShell(
        authenticator=idle, runner=idle, clock=idle, form_key=bytes(32), random_bytes=idle
    )
    return shell.table


def route_tables() -> list[web.RouteTable]:
    return [EMPLOYER_ROUTES, console_table(), portal_table()]


def format_routes(tables: list[web.RouteTable]) -> str:
    """One line per site, method and path: ``site  METHOD  /path  role``."""
    rows = [(t.site, m, p, r) for t in tables for m, p, r in t.rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "".join(
        f"{s:<{widths[0]}}  {m:<{widths[1]}}  {p:<{widths[2]}}  {r}\n" for s, m, p, r in rows
    )
