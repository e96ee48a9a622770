"""Input the database cannot hold is the caller's mistake: 422, not a 500.

Path and body integers are typed `int` (unbounded in Python); PostgreSQL's bigint is not. A
conversation id or epoch beyond int64, found by fuzzing the API, reached asyncpg and failed as
a server error.
"""

from __future__ import annotations

import asyncpg
from fastapi import status
from fastapi.responses import JSONResponse


async def out_of_range_response(_: object, exc: Exception) -> JSONResponse:
    """asyncpg refused an argument (e.g. an int beyond bigint): answer 422."""
    assert isinstance(exc, asyncpg.DataError)
    return JSONResponse(
        {"detail": "a value is out of the range the store can hold"},
        status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
    )
