from baton.runtime import run
from services.router.app import main

run("router", main)
