"""Several `[venues.NAME]` accounts: what the config accepts and the clear errors it gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hedgerd.config import ConfigError, load_config
from hedgerd.execution.client_ids import account_tag


def _load(tmp_path: Path, toml: str) -> Any:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return load_config(path)


TWO = """
[venues.main]
roles = ["options"]
api_key = "key-main"
api_secret = "secret-main"

[venues.sub1]
roles = ["hedge"]
api_key = "key-sub1"
api_secret = "secret-sub1"
hedge_instruments = { BTC = ["BTC-PERPETUAL", "BTC_USDC-PERPETUAL"] }
"""


def test_two_accounts_with_roles_and_hedge_instruments(tmp_path: Path) -> None:
    c = _load(tmp_path, TWO)
    assert list(c.venues) == ["main", "sub1"]
    assert not c.venues["main"].hedges and c.venues["sub1"].hedges
    assert c.hedge_instruments("main", "BTC") == ()  # an options-only account never hedges
    assert c.hedge_instruments("sub1", "BTC") == ("BTC-PERPETUAL", "BTC_USDC-PERPETUAL")
    assert c.hedge_instruments("sub1", "ETH") == ()
    assert c.client_id_tag("main") == account_tag("main") != c.client_id_tag("sub1")


def test_one_account_keeps_the_daemon_hedge_instruments(tmp_path: Path) -> None:
    c = _load(tmp_path, "[venues.deribit]\n")
    assert c.venues["deribit"].roles == ("options", "hedge")
    assert c.hedge_instruments("deribit", "BTC") == ("BTC-PERPETUAL",)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[venues.a]\napi_key = "k"\napi_secret = "s"\n'
            '[venues.b]\napi_key = "k"\napi_secret = "s2"\n',
            "the same API key as venues.a",
        ),
        ('[venues.a]\nmode = "live"\n[venues.b]\nmode = "sim"\n', "cannot hedge real positions"),
        ('[venues.a]\nroles = ["options"]\n', "no [venues.NAME] account has the 'hedge' role"),
        ('[venues.a]\nroles = []\n', "roles must name"),
        ('[venues.a]\nroles = ["hedge", "hedge"]\n', "roles must name"),
        ('[venues.a]\nroles = ["options"]\nhedge_instruments = { BTC = ["BTC-PERPETUAL"] }\n'
         '[venues.b]\n', "without the 'hedge' role"),
        ('[venues."a b"]\n', "an account name is 1-32 letters"),
        ('[venues.a]\nclient_id_tag = "abcd"\n[venues.b]\nclient_id_tag = "abcd"\n',
         "client-id tag 'abcd' is also venues.a's"),
        ('[venues.a]\nclient_id_tag = "ab-d"\n', "client_id_tag"),
        ('[venues.a]\nexchange = "binance"\n', "exchange"),
    ],
)  # fmt: skip
def test_bad_account_configs_are_refused_clearly(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, toml)
    assert message in str(err.value)


def test_duplicate_account_names_are_a_toml_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        _load(tmp_path, "[venues.a]\n[venues.a]\n")
