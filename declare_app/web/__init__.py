"""The employer web application: server-rendered pages in Chinese and a JSON API.

:func:`employer_site` builds the ``twisted.web`` Site that ``ssgate serve`` puts
behind the identity guard; :data:`FORM_SPECS` are the forms of the eight declaration
types (DOMAIN §5).
"""

from declare_app.web._review import review_section
from declare_app.web._site import DEFAULT_MAX_BODY, employer_site, registry_unit_name
from declare_app.web._site import ROUTES as EMPLOYER_ROUTES
from declare_app.web._specs import FORM_SPECS, FieldKind, FieldSpec, FormSpec, Section

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
