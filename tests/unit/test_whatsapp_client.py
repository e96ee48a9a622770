"""Pure parts of the Graph API client (its HTTP behaviour is tested against the simulator)."""

from __future__ import annotations

import pytest

from baton.whatsapp import recipient


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("5511999990000", "+5511999990000"),
        ("+5511999990000", "+5511999990000"),
        (" 5511999990000 ", "+5511999990000"),
    ],
)
def test_recipient_always_carries_one_plus(given: str, sent: str) -> None:
    assert recipient(given) == sent
