"""Config: TOML + HEDGERD_* overrides, secrets redacted, errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.cli import main
from hedgerd.config import ConfigError, HedgerdConfig, load_config

SECRET = "sk-test-5f4dcc3b5aa765d61d8327deb882cf99"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hedgerd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_paper_and_usd() -> None:
    config = load_config(None)
    assert config.numeraire == "usd"
    assert config.venues == {}
    assert not config.dry_run


def test_env_overrides_file_nested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        '[venues.deribit]\nmode = "testnet"\napi_key = "key-from-file"\n[log]\nlevel = "debug"\n',
    )
    monkeypatch.setenv("HEDGERD_LOG__LEVEL", "warning")
    monkeypatch.setenv("HEDGERD_VENUES__DERIBIT__API_SECRET", SECRET)
    config = load_config(path)
    assert config.log.level == "warning"
    venue = config.venues["deribit"]
    assert venue.mode == "testnet"
    creds = venue.credentials()
    assert creds is not None
    assert creds[0].get_secret_value() == "key-from-file"
    assert creds[1].get_secret_value() == SECRET
    assert SECRET in config.secret_values()


def test_secret_from_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    path = write(
        tmp_path,
        f'[venues.d]\napi_key = "k-123"\napi_secret_file = "{secret_file}"\n',
    )
    creds = load_config(path).venues["d"].credentials()
    assert creds is not None and creds[1].get_secret_value() == SECRET


def test_key_without_secret_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[venues.d]\napi_key = "k-123"\n')
    with pytest.raises(ConfigError, match="key and secret go together"):
        load_config(path).venues["d"].credentials()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('numeraire = "eur"\n', "numeraire = 'eur': Input should be 'usd' or 'coin'"),
        ('[venues.d]\nmode = "lve"\n', "venues.d.mode = 'lve'"),
        ("[metrics]\nport = 70000\n", "metrics.port = 70000"),
        ("[control]\ntcp_port = 8080\n", "tcp_port needs a token"),
        ('[venues.d]\nrest_url = "http://127.0.0.1:1"\n', "set together"),
        ("nonsense_key = 1\n", "nonsense_key: unknown key"),
        ("numeraire = \n", "invalid TOML"),
        # Not a number, or no limit at all: refused, never a silently disabled check.
        ("[venues.d]\nstale_market_s = inf\n", "venues.d.stale_market_s = inf"),
        ("[daemon]\nevaluate_interval_s = 1e999\n", "daemon.evaluate_interval_s = inf"),
        (
            "[risk.order_notional]\nmax_order_notional_usd = inf\n",
            "risk.order_notional.max_order_notional_usd = inf",
        ),
        (
            '[hedging]\ndefault_policy = "p"\n[hedging.policies.p]\nkind = "band"\n'
            "target_delta_coin = nan\n",
            "target_delta_coin = nan",
        ),
    ],
)
def test_errors_name_key_value_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert expected in str(info.value)


def test_check_config_prints_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, f'[venues.deribit]\napi_key = "k-1234"\napi_secret = "{SECRET}"\n')
    monkeypatch.setenv("HEDGERD_CONTROL__TOKEN", "tok-" + SECRET)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert "k-1234" not in out + err
    effective = json.loads(out)
    assert effective["venues"]["deribit"]["api_secret"] == "**********"
    assert effective["control"]["token"] == "**********"


def test_check_config_error_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, f'[venues.deribit]\napi_secret = "{SECRET}"\nmode = 3\n')
    assert main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "venues.deribit.mode = 3" in err
    assert SECRET not in out + err


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_every_field_has_a_description() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            annotation = field.annotation
            for candidate in (*getattr(annotation, "__args__", ()), annotation):
                if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
                    missing += walk(candidate)
        return missing

    assert walk(HedgerdConfig) == []


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["numeraire", "dry_run", "log", "venues", "metrics", "control", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=4,
    )
)
def test_fuzzed_config_is_accepted_or_refused_cleanly(values: dict[str, object]) -> None:
    # Whatever the file holds, the outcome is a config or a ConfigError: never a crash.
    try:
        HedgerdConfig(**values)  # type: ignore[arg-type]
    except Exception as exc:  # pydantic's ValidationError is what load_config turns into text
        assert type(exc).__name__ == "ValidationError"
