"""Page cursors round-trip and refuse what is not theirs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.console import cursor


@given(
    st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
    st.integers(min_value=0, max_value=2**63 - 1),
)
def test_a_cursor_names_the_position_it_was_made_from(at: datetime | None, row_id: int) -> None:
    assert cursor.decode(cursor.encode(at, row_id)) == (at, row_id)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "!!!",
        cursor.encode(None, 1)[:-2],
        "WzEsMl0",  # [1,2]: a number where a time belongs
        "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwxXQ",  # a naive time
        "WyIyMDI2LTAxLTAxVDAwOjAwOjAwWiIsdHJ1ZV0",  # true as an id
    ],
)
def test_a_cursor_not_made_here_is_a_400(bad: str) -> None:
    with pytest.raises(cursor.BadCursor):
        cursor.decode(bad)
