"""`[journal]`: the SQLite path by default, a PostgreSQL URL without credentials, the password
from the config, the environment or a file, never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hedgerd.config import ConfigError, HedgerdConfig, load_config
from hedgerd.execution.journal_db import PostgresTarget, journal_location
from hedgerd.secret_files import env_secret

SECRET = "pg-pass-7f3a91"


def test_sqlite_is_the_default() -> None:
    assert HedgerdConfig().journal.location() == Path("var/hedgerd.sqlite")


def test_postgres_url_with_password_from_env_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql://hedgerd@db1:5432/hedgerd"
    monkeypatch.setenv("HEDGERD_JOURNAL__URL", url)
    monkeypatch.setenv("HEDGERD_JOURNAL__PASSWORD", SECRET)
    config = load_config(None)
    location = config.journal.location()
    assert isinstance(location, PostgresTarget) and location.url == url
    assert location.password is not None and location.password.get_secret_value() == SECRET
    assert SECRET not in repr(location) and SECRET not in str(location)
    assert SECRET in config.secret_values()  # so the log redactor knows it

    monkeypatch.delenv("HEDGERD_JOURNAL__PASSWORD")
    secret_file = tmp_path / "pg-password"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setenv("HEDGERD_JOURNAL__PASSWORD_FILE", str(secret_file))
    config = load_config(None)
    from_file = config.journal.location()
    assert isinstance(from_file, PostgresTarget) and from_file.password is not None
    assert from_file.password.get_secret_value() == SECRET
    assert SECRET in config.secret_values()


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://hedgerd:{SECRET}@db1/hedgerd",
        f"postgresql://hedgerd@db1/hedgerd?password={SECRET}",
    ],
)
def test_a_password_in_the_url_is_refused_without_echoing_it(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "hedgerd.toml"
    config_file.write_text(f'[journal]\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    assert "must not contain a password" in str(info.value)
    assert SECRET not in str(info.value)


def test_other_urls_and_stray_passwords_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="postgresql://"):
        HedgerdConfig(journal={"url": "mysql://db1/hedgerd"})  # type: ignore[arg-type]
    # (load_config turns these into a ConfigError without the input: tested above)
    with pytest.raises(ValidationError, match="for a PostgreSQL journal"):
        HedgerdConfig(journal={"password": SECRET})  # type: ignore[arg-type]
    missing = HedgerdConfig(
        journal={"url": "postgresql://h@db1/h", "password_file": str(tmp_path / "nope")}  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError, match="cannot read secret file"):
        missing.journal.location()


def test_command_line_location() -> None:
    assert journal_location("var/j.sqlite") == Path("var/j.sqlite")
    assert isinstance(journal_location("postgres://h@db1/h"), PostgresTarget)


def test_tools_take_the_password_like_the_daemon(tmp_path: Path) -> None:
    """`hedgerd journal export` reads HEDGERD_JOURNAL__PASSWORD, else the file
    HEDGERD_JOURNAL__PASSWORD_FILE names (secret_files.env_secret)."""
    name, file_name = "HEDGERD_JOURNAL__PASSWORD", "HEDGERD_JOURNAL__PASSWORD_FILE"
    assert env_secret(name, file_name, {}) is None
    direct = env_secret(name, file_name, {name: SECRET})
    assert direct is not None and direct.get_secret_value() == SECRET
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET + "\n")
    from_file = env_secret(name, file_name, {file_name: str(secret_file)})
    assert from_file is not None and from_file.get_secret_value() == SECRET
    with pytest.raises(ValueError, match="cannot read secret file") as info:
        env_secret(name, file_name, {file_name: str(tmp_path / "missing")})
    assert SECRET not in str(info.value)
