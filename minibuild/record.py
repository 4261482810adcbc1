"""``@record``: frozen, slotted, keyword-only dataclasses whose methods are closures, not compiled source.

``dataclasses.dataclass`` writes ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` and
``__delattr__`` of every class as Python source and ``exec``s it: about 1 ms per class on CPython 3.11, which made up
a quarter of the start-up of ``minibuild build`` (≈ 70 classes on that path; docs/performance.md). ``record`` lets the
standard library do everything else (fields, defaults, ``ClassVar``, inheritance, ``__slots__``,
``__match_args__``), so ``dataclasses.fields``/``replace``/``asdict`` work as on any dataclass, and adds the same
methods as closures with the same behaviour: equality and hash over the ``compare`` fields, ``repr`` over the
``repr`` fields, ``FrozenInstanceError`` on assignment or deletion, ``__post_init__``, pickling and copying.

One difference is visible: ``__dataclass_params__.frozen`` is False (the standard library must not generate the
frozen methods), so a class made by ``@dataclass(frozen=True)`` cannot inherit from a record; records inherit from
records.
"""

from __future__ import annotations

import dataclasses
from operator import attrgetter
from typing import Any, Callable, TypeVar, dataclass_transform, overload

_C = TypeVar("_C", bound=type)
_MISSING: Any = dataclasses.MISSING
_set = object.__setattr__


@overload
def record(cls: _C, /) -> _C: ...


@overload
def record(*, kw_only: bool = True) -> Callable[[_C], _C]: ...


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: _C | None = None, /, *, kw_only: bool = True) -> _C | Callable[[_C], _C]:
    """Make ``cls`` a frozen slotted dataclass (keyword-only unless ``kw_only=False``) without compiling code."""
    if cls is None:
        return lambda c: _make(c, kw_only)
    return _make(cls, kw_only)


def _make(cls: _C, kw_only: bool) -> _C:
    """The class the standard library makes with no generated methods, plus ours."""
    made: Any = dataclasses.dataclass(init=False, repr=False, eq=False, slots=True, kw_only=kw_only)(cls)
    fields = dataclasses.fields(made)
    own = cls.__dict__
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    methods: dict[str, Callable[..., Any]] = {
        "__init__": _init(made, fields, kw_only),
        "__repr__": _repr(tuple(f.name for f in fields if f.repr)),
        "__eq__": _eq(tuple(f.name for f in fields if f.compare)),
    }
    methods = {name: fn for name, fn in methods.items() if name not in own}
    if not explicit_hash:
        methods["__hash__"] = _hash(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash)))
    methods["__setattr__"], methods["__delattr__"] = _frozen(made, frozenset(f.name for f in fields))
    methods["__getstate__"], methods["__setstate__"] = _state(tuple(f.name for f in fields))
    for name, fn in methods.items():
        fn.__qualname__ = f"{made.__qualname__}.{name}"
        fn.__module__ = made.__module__
        setattr(made, name, fn)
    return made  # type: ignore[no-any-return]


def _init(cls: type, fields: tuple[dataclasses.Field[Any], ...], kw_only: bool) -> Callable[..., None]:
    """``__init__(self, *, field=..., ...)``: defaults, factories, ``init=False`` fields, ``__post_init__``."""
    params = tuple(f for f in fields if f.init)
    names = tuple(f.name for f in params)
    known = frozenset(names)
    plan: tuple[tuple[str, Any, Any], ...] = tuple((f.name, f.default, f.default_factory) for f in params)
    hidden: tuple[tuple[str, Any, Any], ...] = tuple((f.name, f.default, f.default_factory) for f in fields
                   if not f.init and (f.default is not _MISSING or f.default_factory is not _MISSING))
    post_init = getattr(cls, "__post_init__", None) is not None
    positional = names if not kw_only else ()
    owner = cls.__qualname__

    def __init__(self: Any, /, *args: Any, **kwargs: Any) -> None:
        if args:
            if len(args) > len(positional):
                raise TypeError(f"{owner}.__init__() takes {len(positional) + 1} positional argument"
                                f"{'s' if positional else ''} but {len(args) + 1} were given")
            for name, value in zip(positional, args):
                if name in kwargs:
                    raise TypeError(f"{owner}.__init__() got multiple values for argument '{name}'")
                kwargs[name] = value
        if not known.issuperset(kwargs):
            extra = sorted(set(kwargs) - known)[0]
            raise TypeError(f"{owner}.__init__() got an unexpected keyword argument '{extra}'")
        get = kwargs.get
        for name, default, factory in plan:
            value = get(name, default)
            if value is _MISSING:
                if factory is _MISSING:
                    missing = [n for n, d, f in plan if n not in kwargs and d is _MISSING and f is _MISSING]
                    raise TypeError(f"{owner}.__init__() missing {len(missing)} required argument"
                                    f"{'s' if len(missing) > 1 else ''}: {', '.join(repr(m) for m in missing)}")
                value = factory()
            _set(self, name, value)
        for name, default, factory in hidden:
            _set(self, name, factory() if default is _MISSING else default)
        if post_init:
            self.__post_init__()

    return __init__


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    """``Class(a=1, b='x')`` over the ``repr`` fields."""

    def __repr__(self: Any) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    return __repr__


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function returning the tuple of the named attributes (a tuple even for one name or none)."""
    if len(names) >= 2:
        return attrgetter(*names)
    if names:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return lambda _obj: ()


def _eq(names: tuple[str, ...]) -> Callable[[Any, Any], Any]:
    """Equal when of the very same class and equal on every ``compare`` field."""
    values = _values(names)

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    return __eq__


def _hash(names: tuple[str, ...]) -> Callable[[Any], int]:
    """The hash of the tuple of the hashed fields, as the standard library's frozen dataclasses."""
    values = _values(names)

    def __hash__(self: Any) -> int:
        return hash(values(self))

    return __hash__


def _frozen(cls: type[Any], names: frozenset[str]) -> tuple[Callable[..., None], Callable[..., None]]:
    """``__setattr__``/``__delattr__`` raising ``FrozenInstanceError`` as the standard library's do."""

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __setattr__, __delattr__


def _state(names: tuple[str, ...]) -> tuple[Callable[[Any], list[Any]], Callable[[Any, list[Any]], None]]:
    """``__getstate__``/``__setstate__`` for pickle and copy (a slotted frozen class has no ``__dict__``)."""

    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, n) for n in names]

    def __setstate__(self: Any, state: list[Any]) -> None:
        for name, value in zip(names, state):
            _set(self, name, value)

    return __getstate__, __setstate__
