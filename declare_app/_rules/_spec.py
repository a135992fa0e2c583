"""What a declaration form is (DOMAIN.md §5): its fields in sections, each with its
Chinese label, kind, choices, length limit and hint, and the fields the service
fills in.

There is one :class:`FormSpec` per declaration type; it lives with that type's rules
(``_person_add.SPEC`` …), which read a payload against it, and
:data:`declare_app._rules.FORM_SPECS` collects them for the employer pages, the JSON
API and the staff console, which render them.  Field names are the payload keys.

``required`` marks the form and is the rules' static check; some fields are required
only in some cases, and the rules say which.  ``max_length`` bounds the text wherever
it comes from: the web refuses longer input before the rules see it, and the rules
refuse it from a batch file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from declare_app._vocabulary import Codes
from declare_app.interfaces import DeclarationType

MAX_LENGTH: Final = 100  # a field's text, unless its spec says otherwise
MAX_LINES: Final = 10_000  # lines of a LINES field


class FieldKind(enum.Enum):
    """How a field is entered and what shape its value has (value = the API's name)."""

    TEXT = "text"  # one line
    TEXTAREA = "textarea"  # several lines
    SELECT = "select"  # one of the choices
    MULTI = "multi"  # any of the choices (a list)
    DATE = "date"  # YYYY-MM-DD
    MONTH = "month"  # YYYY-MM (the forms say "填写到月")
    DATETIME = "datetime"  # YYYY-MM-DDTHH:MM
    MONEY = "money"  # yuan, at most two decimals
    YEAR = "year"  # YYYY
    TEL = "tel"
    ID_NUMBER = "id-number"  # 公民身份号码 (upper-cased, spaces removed)
    LINES = "lines"  # a batch: one row per person, columns given by ``columns``
    COMPUTED = "computed"  # filled in by the service; never an input


_CHOICE_KINDS: Final = frozenset({FieldKind.SELECT, FieldKind.MULTI})


@dataclass(frozen=True)
class Choice:
    value: str
    label: str

    @property
    def text(self) -> str:
        """How the choice is shown: code and meaning, as on the paper forms."""
        return f"{self.value} {self.label}" if self.value != self.label else self.label


def choices_of(codes: Codes) -> tuple[Choice, ...]:
    """A code list of :mod:`declare_app._vocabulary` as a field's choices."""
    return tuple(Choice(value, label) for value, label in codes)


@dataclass(frozen=True)
class FieldSpec:
    """One field.  A ``LINES`` field is a list of sub-forms: ``columns`` are what each
    line holds, ``computed`` what the service adds to each line."""

    name: str
    label: str  # Chinese, as the manual and the paper forms name it
    kind: FieldKind = FieldKind.TEXT
    required: bool = False
    choices: tuple[Choice, ...] = ()
    max_length: int = MAX_LENGTH
    hint: str = ""
    default: str | tuple[str, ...] = ""  # what a new form starts with
    columns: tuple[FieldSpec, ...] = ()  # LINES only
    computed: tuple[FieldSpec, ...] = ()  # LINES only
    max_lines: int = MAX_LINES  # LINES only

    def __post_init__(self) -> None:
        # A spec mistake fails at import, not on the first employer who meets it.
        if bool(self.choices) != (self.kind in _CHOICE_KINDS):
            raise ValueError(f"{self.name}: choices go with a select or multi field")
        if bool(self.columns) != (self.kind is FieldKind.LINES):
            raise ValueError(f"{self.name}: columns go with a lines field")
        if self.computed and self.kind is not FieldKind.LINES:
            raise ValueError(f"{self.name}: only a lines field has computed columns")
        _check_names(self.name, self.columns, self.computed)

    def choice_label(self, value: str) -> str | None:
        for choice in self.choices:
            if choice.value == value:
                return choice.text
        return None


def computed(name: str, label: str, hint: str = "") -> FieldSpec:
    """A field the rules fill in (the assessed base, the deadline …)."""
    return FieldSpec(name, label, FieldKind.COMPUTED, hint=hint)


def _check_names(owner: str, inputs: tuple[FieldSpec, ...], filled: tuple[FieldSpec, ...]) -> None:
    seen: set[str] = set()
    for f in (*inputs, *filled):
        if f.name in seen:
            raise ValueError(f"{owner}: field {f.name} twice")
        seen.add(f.name)
    for f in inputs:
        if f.kind is FieldKind.COMPUTED:
            raise ValueError(f"{owner}: computed field {f.name} among the inputs")
    for f in filled:
        if f.kind is not FieldKind.COMPUTED:
            raise ValueError(f"{owner}: input field {f.name} among the computed ones")


@dataclass(frozen=True)
class Section:
    title: str
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class FormSpec:
    """One declaration type's form: the inputs in sections, in the order the form
    shows them, and the fields the rules add to a payload when they normalise it."""

    type: DeclarationType
    intro: str  # the rule that applies, shown above the form
    sections: tuple[Section, ...]
    computed: tuple[FieldSpec, ...] = ()
    fields_by_name: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        inputs = tuple(f for s in self.sections for f in s.fields)
        _check_names(self.type.value, inputs, self.computed)
        object.__setattr__(self, "fields_by_name", {f.name: f for f in inputs})

    @property
    def title(self) -> str:
        return self.type.chinese

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """The inputs, in form order."""
        return tuple(self.fields_by_name.values())
