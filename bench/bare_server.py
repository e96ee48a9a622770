"""The baseline: a bare FastAPI endpoint that only answers 200, served like ingest is."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Response

app = FastAPI()


@app.post("/webhook")
async def webhook() -> Response:
    return Response(status_code=200)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
