"""``streamwise serve --host``: loopback by default; anything else needs ``--allow-remote`` and
warns (issue 16, security)."""

from __future__ import annotations

import pytest

from streamwise.cli import host_check, main


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_hosts_need_no_flag(host):
    assert host_check(host, False) == (None, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_other_hosts_are_refused_without_the_flag_and_warned_with_it(host):
    refusal, warning = host_check(host, False)
    assert refusal is not None and "--allow-remote" in refusal and warning is None
    refusal, warning = host_check(host, True)
    assert refusal is None and warning is not None and "TLS" in warning


def test_serve_on_a_public_address_exits_2_before_starting(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--store", "memory"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
