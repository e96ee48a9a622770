from baton.runtime import run
from services.chatwoot.app import main

run("chatwoot", main)
