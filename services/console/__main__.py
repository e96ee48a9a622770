from baton.runtime import run
from services.console.app import main

run("console", main)
