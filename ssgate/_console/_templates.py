"""The console's own HTML: layout, login form, message pages, and the style sheet.

Jinja2 with autoescape on every template and ``StrictUndefined`` (a missing value is
a bug, not an empty string).  Pages' bodies arrive already rendered and escaped by
the page (``auth.console``) and are marked safe here, at the one place that does so.
No script anywhere, no inline style: the Content-Security-Policy allows neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined
from markupsafe import Markup

from auth.console import StaffMember

_LAYOUT = """\
<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} - {{ site_title }}</title>
<link rel="stylesheet" href="/static/console.css">
</head>
<body>
<header class="top">
  <a class="brand" href="/">{{ site_title }}</a>
  {% if staff %}
  <nav>
    {% for path, label in nav %}
    <a href="/{{ path }}"{% if path == current %} class="current"{% endif %}>{{ label }}</a>
    {% endfor %}
  </nav>
  <div class="who">
    <span>{{ staff.name }}（{{ staff.role_title }}）</span>
    <form method="post" action="/logout" class="inline">
      <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
      <button type="submit">退出登录</button>
    </form>
  </div>
  {% endif %}
</header>
<main>
{% block main %}{{ body }}{% endblock %}
</main>
<footer>劳保安全专网 · 工作人员控制台 · 仅限授权人员使用，所有操作均被记录</footer>
</body>
</html>
"""

_LOGIN = """\
{% extends "layout.html" %}
{% block main %}
<h1>工作人员登录</h1>
{% if message %}<p class="{{ message_class }}" role="alert">{{ message }}</p>{% endif %}
<form method="post" action="/login" class="login" autocomplete="off">
  <input type="hidden" name="csrf_token" value="{{ form_token }}">
  <label for="name">用户名</label>
  <input id="name" name="name" type="text" maxlength="64" required autofocus value="{{ name }}">
  <label for="password">密码</label>
  <input id="password" name="password" type="password" maxlength="1024" required>
  <label for="otp">动态口令</label>
  <input id="otp" name="otp" type="text" inputmode="numeric" pattern="[0-9]{6}" maxlength="6"
         required>
  <button type="submit">登录</button>
</form>
<p class="hint">动态口令为身份验证器应用中显示的 6 位数字。连续多次失败将锁定账号。</p>
{% endblock %}
"""

_MESSAGE = """\
{% extends "layout.html" %}
{% block main %}
<h1>{{ title }}</h1>
<p class="{{ message_class }}">{{ message }}</p>
<p><a href="{{ back }}">{{ back_label }}</a></p>
{% endblock %}
"""

_HOME = """\
{% extends "layout.html" %}
{% block main %}
<h1>工作台</h1>
<p>您好，{{ staff.name }}。您的角色：{{ staff.role_title }}。</p>
{% if nav %}
<ul class="home">
  {% for path, label in nav %}<li><a href="/{{ path }}">{{ label }}</a></li>{% endfor %}
</ul>
{% else %}
<p class="notice">您的角色目前没有可用的功能页面。</p>
{% endif %}
{% endblock %}
"""

STYLESHEET = b"""\
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 0;
       color: #1b1b1b; background: #f6f7f9; }
header.top { display: flex; align-items: center; gap: 1.5em; padding: .6em 1.2em;
             background: #1d3b6a; color: #fff; }
header.top a { color: #fff; text-decoration: none; }
header.top .brand { font-weight: bold; }
header.top nav a { margin-right: 1em; }
header.top nav a.current { text-decoration: underline; }
header.top .who { margin-left: auto; display: flex; gap: .8em; align-items: center; }
main { padding: 1.2em; max-width: 72em; }
footer { padding: 1em 1.2em; color: #666; font-size: 85%; }
form.inline { display: inline; margin: 0; }
form.login { display: grid; grid-template-columns: 8em 18em; gap: .6em; align-items: center; }
form.login button { grid-column: 2; }
table.list { border-collapse: collapse; width: 100%; background: #fff; }
table.list th, table.list td { border: 1px solid #ccd; padding: .35em .6em; text-align: left;
                               vertical-align: top; }
table.list th { background: #e8ecf3; }
.error { color: #a00000; background: #fff0f0; border: 1px solid #e0b0b0; padding: .5em; }
.notice { color: #14532d; background: #effaf1; border: 1px solid #a7d7b0; padding: .5em; }
.field-error { color: #a00000; font-size: 90%; }
.hint { color: #555; font-size: 90%; }
.actions { display: flex; gap: 1em; align-items: flex-start; flex-wrap: wrap; margin: 1em 0; }
.actions form { background: #fff; border: 1px solid #ccd; padding: .8em; }
pre { white-space: pre-wrap; word-break: break-all; }
@media print { header.top, footer, .actions { display: none; } }
"""

_ENV = Environment(
    loader=DictLoader(
        {
            "layout.html": _LAYOUT,
            "login.html": _LOGIN,
            "message.html": _MESSAGE,
            "home.html": _HOME,
        }
    ),
    autoescape=True,
    undefined=StrictUndefined,
    auto_reload=False,
)


def render(
    template: str,
    *,
    title: str,
    site_title: str,
    staff: StaffMember | None = None,
    nav: Sequence[tuple[str, str]] = (),
    current: str = "",
    csrf_token: str = "",
    body_html: str = "",
    **values: Any,
) -> bytes:
    """Render one of the shell's templates to UTF-8 bytes."""
    return (
        _ENV.get_template(template)
        .render(
            title=title,
            site_title=site_title,
            staff=staff,
            nav=nav,
            current=current,
            csrf_token=csrf_token,
            body=Markup(body_html),  # noqa: S704 - the page escaped it (auth.console contract)
            **values,
        )
        .encode("utf-8")
    )
