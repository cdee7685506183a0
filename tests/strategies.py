"""Hypothesis strategies for any contract record, derived from its msgspec type and constraints."""
from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st


def _for(t: mi.Type) -> st.SearchStrategy[Any]:
    if isinstance(t, mi.IntType):
        lo = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else -(2**53))
        hi = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else 2**53)
        return st.integers(lo, hi)
    if isinstance(t, mi.FloatType):
        lo = t.ge if t.ge is not None else -1e12
        hi = t.le if t.le is not None else 1e12
        return st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    if isinstance(t, mi.StrType):
        return st.text(min_size=t.min_length or 0, max_size=min(t.max_length or 40, 40))
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.ListType):
        return st.lists(_for(t.item_type), min_size=t.min_length or 0, max_size=min(t.max_length or 4, 4))
    if isinstance(t, mi.UnionType):
        return st.one_of(*[_for(x) for x in t.types])
    if isinstance(t, mi.StructType):
        return records(t.cls)
    raise NotImplementedError(f"no strategy for {t!r}")


def records(cls: type[msgspec.Struct]) -> st.SearchStrategy[msgspec.Struct]:
    """Any valid instance of a record type, honouring its field constraints."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return st.builds(cls, **{f.name: _for(f.type) for f in info.fields})
