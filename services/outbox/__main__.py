from baton.runtime import run
from services.outbox.app import main

run("outbox", main)
