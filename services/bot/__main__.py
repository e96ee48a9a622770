from baton.runtime import run
from services.bot.app import main

run("bot", main)
