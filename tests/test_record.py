"""``minibuild.record`` behaves as ``dataclass(frozen=True, slots=True, kw_only=True)`` does, class for class."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minibuild.record import record


# the same classes twice: once by the standard library, once by record (module level so that pickle finds them)
@dataclass(frozen=True, slots=True, kw_only=True)
class StdPoint:
    """A point."""

    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)
    note: str = field(default="", compare=False)
    secret: str = field(default="s", repr=False)


@record
class RecPoint:
    """A point."""

    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)
    note: str = field(default="", compare=False)
    secret: str = field(default="s", repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StdBase:
    """A base."""

    span: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StdChild(StdBase):
    """A child."""

    name: str


@record
class RecBase:
    """A base."""

    span: int = field(default=0, compare=False)


@record
class RecChild(RecBase):
    """A child."""

    name: str


@record(kw_only=False)
class RecPair:
    """Positional arguments allowed."""

    left: int
    right: int = 2


@record
class RecChecked:
    """With a __post_init__ and an init=False field."""

    value: int
    double: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")
        object.__setattr__(self, "double", self.value * 2)


@record
class RecOwnRepr:
    """Keeps the methods its body defines."""

    a: int

    def __repr__(self) -> str:
        return "own"

    def __hash__(self) -> int:
        return 7


def _pair(**kw: object) -> tuple[StdPoint, RecPoint]:
    return StdPoint(**kw), RecPoint(**kw)  # type: ignore[arg-type]


values = st.fixed_dictionaries({"x": st.integers(-5, 5)}, optional={
    "y": st.integers(-5, 5), "tags": st.tuples(st.sampled_from("ab")), "note": st.sampled_from(["", "n"]),
    "secret": st.sampled_from(["s", "t"])})


@given(values, values)
def test_equality_hash_and_repr_match_the_standard_library(a: dict[str, object], b: dict[str, object]) -> None:
    std_a, rec_a = _pair(**a)
    std_b, rec_b = _pair(**b)
    assert (rec_a == rec_b) == (std_a == std_b)
    assert (rec_a != rec_b) == (std_a != std_b)
    assert hash(rec_a) == hash(std_a)
    assert repr(rec_a) == repr(std_a).replace("StdPoint", "RecPoint")
    assert dataclasses.astuple(rec_a) == dataclasses.astuple(std_a)


def test_a_record_is_a_frozen_slotted_dataclass() -> None:
    point = RecPoint(x=1)
    assert dataclasses.is_dataclass(point)
    assert [f.name for f in dataclasses.fields(RecPoint)] == ["x", "y", "tags", "note", "secret"]
    assert not hasattr(point, "__dict__")
    assert RecPoint.__slots__ == ("x", "y", "tags", "note", "secret")
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'x'"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'y'"):
        del point.y  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.other = 1  # type: ignore[attr-defined]
    assert RecPoint.kind == "point" and "kind" not in RecPoint.__slots__
    assert RecPoint(x=1) != StdPoint(x=1) and RecPoint(x=1) != (1, 0, (), "s")


def test_replace_asdict_copy_and_pickle() -> None:
    point = RecPoint(x=1, tags=("a",), note="n")
    moved = dataclasses.replace(point, y=5)
    assert (moved.x, moved.y, moved.tags, moved.note) == (1, 5, ("a",), "n")
    assert dataclasses.asdict(point) == {"x": 1, "y": 0, "tags": ("a",), "note": "n", "secret": "s"}
    for clone in (copy.copy(point), copy.deepcopy(point), pickle.loads(pickle.dumps(point))):
        assert clone == point and clone.note == "n" and clone is not point


def test_constructor_errors_name_the_argument() -> None:
    with pytest.raises(TypeError, match="missing 1 required argument: 'x'"):
        RecPoint()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        RecPoint(x=1, z=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="takes 1 positional argument but 2 were given"):
        RecPoint(1)  # type: ignore[misc]


def test_defaults_are_not_shared_and_factories_run_per_instance() -> None:
    @record
    class Bag:
        """A bag."""

        items: list[int] = field(default_factory=list)

    a, b = Bag(), Bag()
    a.items.append(1)
    assert b.items == [] and a.items == [1]


def test_inherited_fields_come_first_and_keep_their_flags() -> None:
    rec, std = RecChild(name="n", span=3), StdChild(name="n", span=3)
    assert [f.name for f in dataclasses.fields(rec)] == [f.name for f in dataclasses.fields(std)]
    assert RecChild(name="n", span=1) == RecChild(name="n", span=2)  # span is compare=False
    assert hash(RecChild(name="n", span=1)) == hash(StdChild(name="n", span=1))
    assert RecBase(span=1) != RecChild(name="n", span=1)


def test_positional_records() -> None:
    assert RecPair(1) == RecPair(left=1, right=2) == RecPair(1, 2)
    with pytest.raises(TypeError, match="multiple values for argument 'left'"):
        RecPair(1, left=1)  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 3 positional arguments but 4 were given"):
        RecPair(1, 2, 3)  # type: ignore[call-arg]


def test_post_init_and_init_false_fields() -> None:
    assert RecChecked(value=2).double == 4
    with pytest.raises(ValueError, match="negative"):
        RecChecked(value=-1)
    with pytest.raises(ValueError, match="init=False"):
        dataclasses.replace(RecChecked(value=1), double=3)  # type: ignore[call-arg]
    assert dataclasses.replace(RecChecked(value=1), value=3).double == 6


def test_methods_written_in_the_class_body_are_kept() -> None:
    assert repr(RecOwnRepr(a=1)) == "own" and hash(RecOwnRepr(a=1)) == 7
    assert RecOwnRepr(a=1) == RecOwnRepr(a=1) != RecOwnRepr(a=2)
