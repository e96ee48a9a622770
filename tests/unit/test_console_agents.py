"""Who may call the console: token configuration and lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from baton.settings import Settings
from services.console.agents import (
    DEV_AGENT_ID,
    DEV_AGENT_TOKEN,
    AgentsConfigError,
    Directory,
    Kind,
    Principal,
    load_directory,
    parse_file,
    parse_pairs,
)

STRONG = "x" * 32


def settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_pairs_name_agents_and_tokens_may_contain_colons() -> None:
    found = parse_pairs(" alice:tok:en:1 , bob:t2,", Kind.AGENT)
    assert [(p.id, p.kind, t.get_secret_value()) for p, t in found] == [
        ("alice", Kind.AGENT, "tok:en:1"),
        ("bob", Kind.AGENT, "t2"),
    ]


@pytest.mark.parametrize("raw", ["alice", "alice:", ":token"])
def test_a_pair_without_id_or_token_is_refused(raw: str) -> None:
    with pytest.raises(AgentsConfigError):
        Directory(parse_pairs(raw, Kind.AGENT))


def test_tokens_authenticate_their_principal_only() -> None:
    directory = load_directory(
        settings(agent_tokens=SecretStr("alice:ta,bob:tb"), bot_tokens=SecretStr("helper:th"))
    )
    alice = directory.authenticate("ta")
    helper = directory.authenticate("th")
    assert alice is not None and (alice.id, alice.kind) == ("alice", Kind.AGENT)
    assert helper is not None and (helper.id, helper.kind) == ("helper", Kind.BOT)
    assert directory.authenticate("tb ") is None
    assert directory.authenticate("") is None
    assert directory.ids() == ["alice", "bob", "helper"]


def test_the_file_gives_scopes_and_kinds(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(
        '[agents.alice]\ntoken = "ta"\nnumbers = [900000000000001]\n'
        '[agents.bob]\ntoken = "tb"\n'
        '[bots.helper]\ntoken = "th"\n'
    )
    by_id = {p.id: p for p, _ in parse_file(path)}
    assert by_id["alice"].numbers == frozenset({"900000000000001"})
    assert by_id["alice"].may_see("900000000000001")
    assert not by_id["alice"].may_see("900000000000002")
    assert by_id["bob"].numbers is None and by_id["bob"].may_see("anything")
    assert by_id["helper"].kind is Kind.BOT


@pytest.mark.parametrize(
    "text",
    [
        '[agents.alice]\ntoken = "t"\nrole = "admin"\n',  # unknown key
        '[people.alice]\ntoken = "t"\n',  # unknown table
        "[agents.alice]\n",  # no token
        '[agents.alice]\ntoken = "t"\nnumbers = []\n',  # an empty scope sees nothing: a mistake
        "not toml at all [",
    ],
)
def test_a_bad_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    with pytest.raises(AgentsConfigError):
        parse_file(path)


@pytest.mark.parametrize(
    "pairs",
    ["alice:t1,alice:t2", "alice:same,bob:same", "me:t1", "none:t1", "NONE:t1"],
)
def test_duplicates_and_reserved_ids_are_refused(pairs: str) -> None:
    with pytest.raises(AgentsConfigError):
        load_directory(settings(agent_tokens=SecretStr(pairs)))


def test_a_local_stack_without_agents_gets_the_development_agent() -> None:
    directory = load_directory(settings())
    assert directory.authenticate(DEV_AGENT_TOKEN) == Principal(id=DEV_AGENT_ID, kind=Kind.AGENT)
    assert len(directory) == 1


def test_production_refuses_no_agents_weak_tokens_and_the_development_token() -> None:
    secrets = {"app_secret": "s" * 20, "verify_token": "v" * 20, "access_token": "a" * 20}
    production = {"environment": "production", **secrets}
    with pytest.raises(AgentsConfigError, match="needs agents"):
        load_directory(settings(**production))
    with pytest.raises(AgentsConfigError):
        load_directory(settings(**production, agent_tokens=SecretStr("alice:short")))
    with pytest.raises(AgentsConfigError):
        load_directory(settings(**production, agent_tokens=SecretStr(f"a:{DEV_AGENT_TOKEN}")))
    directory = load_directory(settings(**production, agent_tokens=SecretStr(f"alice:{STRONG}")))
    assert directory.ids() == ["alice"]
    # Configured agents replace the development agent everywhere.
    assert directory.authenticate(DEV_AGENT_TOKEN) is None
