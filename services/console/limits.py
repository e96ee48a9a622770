"""Input the database cannot hold is the caller's mistake: 422, not a 500.

Path and body integers are typed `int` (unbounded in Python); PostgreSQL's bigint is not. A
conversation id or epoch beyond int64, found by fuzzing the API, reached asyncpg and failed as
a server error. asyncpg raises two unrelated `DataError`s: the server's (SQLSTATE class 22, e.g.
a character the database encoding cannot hold) and its own, before sending, for an argument it
cannot encode (an int beyond int64); both are the caller's input.
"""

from __future__ import annotations

import asyncpg
from asyncpg.exceptions import _base as asyncpg_client
from fastapi import status
from fastapi.responses import JSONResponse

REFUSED_INPUT: tuple[type[Exception], ...] = (asyncpg.DataError, asyncpg_client.DataError)


async def out_of_range_response(_: object, exc: Exception) -> JSONResponse:
    """asyncpg refused an argument (e.g. an int beyond bigint): answer 422."""
    assert isinstance(exc, REFUSED_INPUT)
    return JSONResponse(
        {"detail": "a value is out of the range the store can hold"},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )
