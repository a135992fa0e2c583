"""The employer web application: server-rendered pages in Chinese and a JSON API.

:func:`employer_site` builds the ``twisted.web`` Site that ``ssgate serve`` puts
behind the identity guard; :data:`FORM_SPECS`, the forms of the eight declaration
types (DOMAIN §5), are the rules' own, re-exported here for compatibility.
"""

from declare_app._rules import FORM_SPECS, FieldKind, FieldSpec, FormSpec, Section
from declare_app.web._review import review_section
from declare_app.web._site import DEFAULT_MAX_BODY, employer_site, registry_unit_name
from declare_app.web._site import ROUTES as EMPLOYER_ROUTES

__all__ = [
    "DEFAULT_MAX_BODY",
    "EMPLOYER_ROUTES",
    "FORM_SPECS",
    "FieldKind",
    "FieldSpec",
    "FormSpec",
    "Section",
    "employer_site",
    "registry_unit_name",
    "review_section",
]
