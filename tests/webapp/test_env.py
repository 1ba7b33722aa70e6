import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from webapp.config.env import env_bool, env_int, env_list, env_optional_str, env_str


def test_it_reads_booleans_in_the_usual_spellings(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG", default=False) is True
    monkeypatch.setenv("FLAG", "0")
    assert env_bool("FLAG", default=True) is False


def test_it_rejects_a_malformed_boolean(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        env_bool("FLAG", default=False)


def test_it_falls_back_to_defaults_when_unset(monkeypatch):
    monkeypatch.delenv("UNSET_VALUE", raising=False)
    assert env_str("UNSET_VALUE", "fallback") == "fallback"
    assert env_optional_str("UNSET_VALUE") is None
    assert env_int("UNSET_VALUE", 7) == 7
    assert env_list("UNSET_VALUE", ["a"]) == ["a"]


def test_it_rejects_integers_below_the_minimum(monkeypatch):
    monkeypatch.setenv("COUNT", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("COUNT", 3, minimum=1)
    monkeypatch.setenv("COUNT", "three")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("COUNT", 3)


def test_it_splits_lists_on_commas(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example , b.example,,")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]


def test_it_treats_an_empty_variable_as_unset(monkeypatch):
    monkeypatch.setenv("EMPTY", "")
    assert env_bool("EMPTY", default=True) is True
    assert env_list("EMPTY", ["localhost"]) == ["localhost"]
    assert env_int("EMPTY", 5) == 5


def test_env_example_lists_every_setting_the_app_reads():
    root = Path(__file__).resolve().parents[2]
    read = set(re.findall(r'env_\w+\(\s*"(\w+)"', (root / "webapp/config/settings.py").read_text()))
    listed = set(re.findall(r"^(\w+)=", (root / ".env.example").read_text(), re.MULTILINE))
    assert read - listed == set()
