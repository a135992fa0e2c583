"""The Jinja2 environment of the employer pages and the style sheet.

Autoescape is on for every template and undefined values raise (a missing value is
a bug, not an empty string).  Templates and the style sheet are package data
(``declare_app/web/templates``, ``declare_app/web/static``).
"""

from __future__ import annotations

from importlib.resources import files

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined

from declare_app.web._views import fmt_time, reason_text, result_rows, status_text, summary


def template_environment() -> Environment:
    env = Environment(
        # The pages' own templates, then the skeleton both sites share (web).
        loader=ChoiceLoader(
            [PackageLoader("declare_app.web", "templates"), PackageLoader("web", "templates")]
        ),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals.update(
        fmt_time=fmt_time,
        reason_text=reason_text,
        result_rows=result_rows,
        status_text=status_text,
        summary=summary,
    )
    return env


def style_sheet() -> bytes:
    return files("declare_app.web").joinpath("static/employer.css").read_bytes()
