from baton.runtime import run
from services.ingest.app import main

run("ingest", main)
