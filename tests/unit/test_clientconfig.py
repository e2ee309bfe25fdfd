from __future__ import annotations

import re

import pytest
from ghapt.cli.clientconfig import auth_entry, auth_machine, sources_entry


@pytest.mark.parametrize(
    ("url", "machine"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://apt.example.com/prod/", "apt.example.com/prod"),
        (
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
            "abc.execute-api.eu-west-1.amazonaws.com/prod",
        ),
    ],
)
def test_plain_http_machine_lines_name_the_scheme(url: str, machine: str) -> None:
    assert auth_machine(url) == machine
    assert auth_entry(url, "alice", "pw") == f"machine {machine} login alice password pw\n"


def test_auth_entry_refuses_whitespace_and_non_http() -> None:
    with pytest.raises(ValueError, match="cannot contain whitespace"):
        auth_entry("http://h", "alice", "pass word")
    with pytest.raises(ValueError, match=re.escape("not an http(s) URL: 'ftp://h'")):
        auth_machine("ftp://h")


def test_sources_entry_is_deb822_with_signed_by() -> None:
    text = sources_entry("https://apt.example.com/prod", ["stable"], ["main"], "/etc/apt/keyrings/ghapt.asc")
    assert text == (
        "Types: deb\nURIs: https://apt.example.com/prod/\nSuites: stable\nComponents: main\n"
        "Signed-By: /etc/apt/keyrings/ghapt.asc\n"
    )
