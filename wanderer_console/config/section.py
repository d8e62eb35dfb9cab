"""The base of every settings section, and how each field says when a change of it takes effect.

Every field of a section is declared next to its type as applied **live** or as needing a
**restart**::

    dry_run: Annotated[bool, LIVE] = False
    data_dir: Annotated[Path | None, Restart("the store is opened and locked there at start")]

:class:`Live` means the component that uses the value reads the running settings when it uses
it (or is given the new value on every reload); :class:`Restart` says, in its ``why``, what took
the value at start. A field whose type is itself a section is not declared: its own fields are.
A section that leaves a field undeclared fails at import (:func:`check_declared`); hot reload
classifies changed keys from these declarations (:mod:`wanderer_console.config.live`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo

__all__ = ["LIVE", "Live", "Restart", "Section", "check_declared", "declared", "is_section"]


@dataclass(frozen=True, slots=True)
class Live:
    """A change takes effect in the running engine (read at use, or re-applied on reload)."""

    how: str = ""
    """Optionally, who reads it and when."""


@dataclass(frozen=True, slots=True)
class Restart:
    """A change takes effect at the next start only."""

    why: str
    """What took the value at start (a socket opened, a client built, a task started)."""

    def __post_init__(self) -> None:
        if not self.why.strip():
            raise ValueError("Restart needs a reason")


LIVE: Final = Live()
"""The plain live marker."""


def declared(field: FieldInfo) -> Live | Restart | None:
    """The field's declaration (``None`` when it has none)."""
    found = [m for m in field.metadata if isinstance(m, Live | Restart)]
    if len(found) > 1:
        raise TypeError(f"declared more than once: {found}")
    return found[0] if found else None


def is_section(annotation: Any) -> TypeGuard[type[BaseModel]]:
    """True when ``annotation`` is a settings model (its fields carry the declarations)."""
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def check_declared(model: type[BaseModel]) -> None:
    """Raise ``TypeError`` naming every field of ``model`` that is neither a section nor
    declared :class:`Live` or :class:`Restart`, or a section field that carries a declaration."""
    problems = []
    for name, field in model.model_fields.items():
        marker = declared(field)
        if is_section(field.annotation):
            if marker is not None:
                problems.append(f"{name} is a section: declare its fields instead")
        elif marker is None:
            problems.append(f"{name} says neither Live nor Restart")
    if problems:
        raise TypeError(f"{model.__name__}: " + "; ".join(problems))


class Section(BaseModel):
    """A TOML table of the configuration; every field declares :class:`Live` or :class:`Restart`.

    A number must be finite: TOML (and the control API's JSON) spell ``inf`` and ``nan``, and a
    timeout, an interval or a threshold bounded only from below would take ``inf`` (a wait for
    ever, or an ``OverflowError`` in the event loop), ``nan`` failing its bound with a message
    about the bound. Both are refused as ``Input should be a finite number``, at the key.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        check_declared(cls)
