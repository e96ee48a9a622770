"""The operator's command line, `baton …`: numbers, agents, dead letters, a test message, doctor.

Each command belongs to the code that owns its subject (the history service's onboarding, the
console's accounts); this package only parses and dispatches.
"""
