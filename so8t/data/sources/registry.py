"""The registry of data source forms: it builds what the config needs from the forms defined so far.

From the registered `SourceForm` classes it builds the `DataSource` type (a tagged union of the forms, used
as `list[DataSource]` by DataConfig), the discriminator that picks an item's form, the builtin names and the
error texts for items that fit no form. Defining a form later (a plugin, a test) re-registers it and
rebuilds the models that hold sources, through the callbacks given to `on_change`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Discriminator, Tag

if TYPE_CHECKING:  # pragma: no cover
    from so8t.data.sources.base import SourceForm

BUILTIN_KEY = "builtin"


def join_or(words: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _tag(name: str) -> str:
    # the parentheses keep the tag out of the key paths of error messages (see so8t.config.messages)
    return f"source({name})"


class SourceRegistry:
    """The data source forms by name: `path`, `hub`, and the builtin names."""

    def __init__(self) -> None:
        self._forms: dict[str, type[SourceForm]] = {}
        self._listeners: list[Callable[[], None]] = []

    # ------------------------------------------------------------------------------------- registration

    @staticmethod
    def name_of(cls: type[SourceForm]) -> str:
        """A form's name: its key, or for a builtin form the value of its `builtin` field."""
        if cls.key != BUILTIN_KEY:
            return cls.key
        field = cls.model_fields.get(BUILTIN_KEY)
        values = get_args(field.annotation) if field is not None else ()
        if field is None or get_origin(field.annotation) is not Literal or len(values) != 1:
            raise TypeError(f'{cls.__name__}: a builtin form declares `builtin: Literal["name"]`')
        return str(values[0])

    def add(self, cls: type[SourceForm]) -> None:
        """Register a form (called when its class is defined) and rebuild the models that hold sources."""
        if "repeat" not in cls.model_fields:
            raise TypeError(f"{cls.__name__}: a data source form ends with `repeat: int = repeat_field()`")
        name = self.name_of(cls)
        known = self._forms.get(name)
        # the same class defined again (a module reloaded) replaces itself; another class may not
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"{cls.__name__}: the data source form {name!r} is already {known.__name__}")
        self._forms[name] = cls
        self._changed()

    def remove(self, cls: type[SourceForm]) -> None:
        """Unregister a form (a test's own form, when the test ends)."""
        self._forms.pop(self.name_of(cls), None)
        self._changed()

    def on_change(self, rebuild: Callable[[], None]) -> None:
        """Call `rebuild` whenever the forms change (models embedding `list[DataSource]` register here)."""
        self._listeners.append(rebuild)

    def _changed(self) -> None:
        for rebuild in self._listeners:
            rebuild()

    # ------------------------------------------------------------------------------------------- views

    def forms(self) -> list[type[SourceForm]]:
        """Every form in the documented order: the string form, other keyed forms, then builtins by name."""
        return sorted(
            self._forms.values(),
            key=lambda c: (not c.from_string, c.key == BUILTIN_KEY, c.key, self.name_of(c)),
        )

    def builtin_names(self) -> list[str]:
        return [self.name_of(c) for c in self.forms() if c.key == BUILTIN_KEY]

    def keys(self) -> list[str]:
        """The keys that name a form in a mapping, in documented order (path, hub, builtin)."""
        return list(dict.fromkeys(c.key for c in self.forms()))

    def form_of(self, value: Any) -> str | None:
        """The name of the form an item takes (the discriminator of DataSource), or None when none fits.

        A mapping with `builtin` is that builtin; otherwise the first key that names a form decides, the
        forms that also take a plain string coming last.
        """
        if isinstance(value, BaseModel):
            known = type(value) in self._forms.values()
            return self.name_of(type(value)) if known else None  # type: ignore[arg-type]
        if isinstance(value, str):
            return next((self.name_of(c) for c in self.forms() if c.from_string), None)
        if not isinstance(value, dict):
            return None
        if BUILTIN_KEY in value:
            name = value[BUILTIN_KEY]
            return name if isinstance(name, str) and name in self.builtin_names() else None
        for cls in sorted(self.forms(), key=lambda c: c.from_string):
            if cls.key != BUILTIN_KEY and cls.key in value:
                return cls.key
        return None

    def cls_of(self, value: Any) -> type[SourceForm] | None:
        name = self.form_of(value)
        return None if name is None else self._forms[name]

    def _tag_of(self, value: Any) -> str | None:
        name = self.form_of(value)
        return None if name is None else _tag(name)

    def union(self) -> Any:
        """The tagged union of every form, discriminated by form_of."""
        members = tuple(Annotated[c, Tag(_tag(self.name_of(c)))] for c in self.forms())
        return Annotated[
            Union[members],  # noqa: UP007 - a union built from a tuple of tagged members
            Discriminator(
                self._tag_of,
                custom_error_type="data_source",
                custom_error_message=(
                    f"a data source is {self._string_or_mapping()} with {join_or(self.keys())}"
                ),
            ),
        ]

    # ------------------------------------------------------------------------------------ error texts

    def _string_or_mapping(self) -> str:
        strings = [c.key for c in self.forms() if c.from_string]
        return f"a {join_or(strings)} string or a mapping" if strings else "a mapping"

    def _shape(self, key: str) -> str:
        """`{path, format}` for a form alone with its key and at most two keys, else `{key, ...}`."""
        forms = [c for c in self.forms() if c.key == key]
        fields = [f for f in forms[0].model_fields if f != "repeat"]
        if len(forms) == 1 and len(fields) <= 2:
            return "{" + ", ".join(fields) + "}"
        return "{" + key + ", ...}"

    def item_problem(self, item: Any) -> tuple[str, str] | None:
        """(key suffix, message) for a list item that fits no form, e.g. (".builtin", "unknown builtin ...");
        None when the item names a form (its own keys are checked against that form's schema)."""
        if not isinstance(item, (str, dict)):
            shapes = join_or([self._shape(k) for k in self.keys()])
            return "", f"got {item!r}; a data source is {self._string_or_mapping()} ({shapes})"
        if isinstance(item, dict) and BUILTIN_KEY in item and self.form_of(item) is None:
            names = self.builtin_names()
            close = difflib.get_close_matches(str(item[BUILTIN_KEY]), names, n=1, cutoff=0.5)
            hint = f", did you mean {close[0]}?" if close else ""
            return (
                f".{BUILTIN_KEY}",
                f"unknown builtin {item[BUILTIN_KEY]!r}{hint} (builtins: {', '.join(names)})",
            )
        if self.form_of(item) is None:
            found = ", ".join(map(str, item)) or "none"
            return "", f"a data source mapping needs one of {join_or(self.keys())} (found keys: {found})"
        return None


SOURCES = SourceRegistry()


class DataSource:
    """The type of one item of a split's source list: any registered form (`list[DataSource]`)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return handler.generate_schema(SOURCES.union())
