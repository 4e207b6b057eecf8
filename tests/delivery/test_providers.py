"""Provider groups: by domain name, by MX host, the operator's own groups, the MX cache and DNS failures."""

from __future__ import annotations

import pytest

from sendwell.config import parse_provider_groups
from sendwell.delivery.providers import OTHER, MxLookupFailed, ProviderGroups, ProviderMx
from sendwell.db.session import transaction


class Dns:
    """A lookup table standing in for the resolver in unit tests; tests/delivery/test_provider_dns.py uses NSD."""

    def __init__(self, answers: dict[str, list[str] | Exception]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, domain: str) -> list[str]:
        self.asked.append(domain)
        answer = self.answers.get(domain, [])
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_consumer_domains_are_grouped_by_name_without_dns() -> None:
    dns = Dns({})
    groups = ProviderGroups(lookup=dns)
    expected = {"gmail.com": "google", "Hotmail.co.uk": "microsoft", "outlook.com": "microsoft", "aol.com": "yahoo",
                "yahoo.co.jp": "yahoo", "icloud.com": "apple", "me.com": "apple", "qq.com": "qq", "foxmail.com": "qq",
                "163.com": "netease", "126.com": "netease", "yeah.net": "netease", "aliyun.com": "alibaba",
                "web.de": "gmx", "gmx.de": "gmx", "mail.ru": "mailru", "yandex.ru": "yandex", "orange.fr": "orange",
                "zoho.com": "zoho"}
    assert {d: groups.group_for(d) for d in expected} == expected
    assert dns.asked == []


@pytest.mark.parametrize(("mx", "group"), [
    ("aspmx.l.google.com", "google"), ("smtp.google.com", "google"),
    ("acme-com.mail.protection.outlook.com", "microsoft"), ("mta7.am0.yahoodns.net", "yahoo"),
    ("mx01.mail.icloud.com", "apple"), ("mxbiz1.qq.com", "qq"), ("qiye163mx01.mxmail.netease.com", "netease"),
    ("mxw.mxhichina.com", "alibaba"), ("mx.zoho.eu", "zoho"), ("mx.yandex.net", "yandex"),
    ("mx00.kundenserver.de", "gmx"), ("mail.acme-buyer.example", OTHER),
])
def test_company_domains_are_grouped_by_their_mx_hosts(mx: str, group: str) -> None:
    groups = ProviderGroups(lookup=Dns({"buyer.example": ["backup.other.example", mx]}), look_up_special=True)
    # The first MX host that matches a group decides; unknown hosts before it do not.
    assert groups.group_for("someone@Buyer.example") == group


def test_operator_groups_match_domain_or_mx_and_come_before_built_in_ones() -> None:
    extra = parse_provider_groups("acme=*.acme.example|mx*.acme-mail.example, gw=*.google.com")
    dns = Dns({"shop.example": ["mx2.acme-mail.example"], "ws.example": ["aspmx.l.google.com"]})
    groups = ProviderGroups(extra, lookup=dns, look_up_special=True)
    assert groups.group_for("sales.acme.example") == "acme"  # by name, no lookup
    assert groups.group_for("shop.example") == "acme"
    assert groups.group_for("ws.example") == "gw"
    assert groups.group_for("gmail.com") == "google"
    assert groups.names[:2] == ["acme", "gw"] and groups.names[-1] == OTHER


def test_provider_groups_setting_names_the_bad_entry() -> None:
    for bad in ("acme", "acme=", "=*.x.example", "Ac me=*.x", "acme=*.x example"):
        with pytest.raises(ValueError, match="SENDWELL_PROVIDER_GROUPS"):
            parse_provider_groups(bad)


def test_special_use_names_are_not_looked_up_on_the_system_resolver() -> None:
    dns = Dns({"buyer.example": ["aspmx.l.google.com"]})
    assert ProviderGroups(lookup=dns).group_for("buyer.example") == OTHER
    assert dns.asked == []


def test_mx_hosts_are_stored_and_reused_by_another_process(runtime) -> None:
    dns = Dns({"buyer.example": ["aspmx.l.google.com"], "gone.example": []})
    first = ProviderGroups(lookup=dns, factory=runtime.factory, look_up_special=True)
    assert first.group_for("buyer.example") == "google"
    assert first.group_for("buyer.example") == "google"
    assert first.group_for("gone.example") == OTHER
    assert dns.asked == ["buyer.example", "gone.example"]
    # Another process (a new object) reads the stored hosts instead of asking DNS again,
    # and applies its own groups to them: a changed SENDWELL_PROVIDER_GROUPS counts at once.
    second = ProviderGroups(parse_provider_groups("gw=aspmx.l.google.com"), lookup=dns, factory=runtime.factory,
                            look_up_special=True)
    assert second.group_for("buyer.example") == "gw"
    assert dns.asked == ["buyer.example", "gone.example"]
    with transaction(runtime.factory) as s:
        rows = {r.domain: r for r in s.query(ProviderMx)}
        # An empty answer is trusted for a shorter time than a real one.
        assert rows["gone.example"].expires_at - rows["gone.example"].checked_at < (
            rows["buyer.example"].expires_at - rows["buyer.example"].checked_at)
    assert second.stored_groups() == {"gw": 1, OTHER: 1}


def test_an_expired_entry_is_looked_up_again_and_dns_failure_keeps_the_last_hosts(runtime) -> None:
    dns = Dns({"buyer.example": ["aspmx.l.google.com"]})
    ProviderGroups(lookup=dns, factory=runtime.factory, look_up_special=True).group_for("buyer.example")
    with transaction(runtime.factory) as s:
        row = s.get(ProviderMx, "buyer.example")
        row.expires_at = row.checked_at
    dns.answers["buyer.example"] = MxLookupFailed("timeout")
    groups = ProviderGroups(lookup=dns, factory=runtime.factory, look_up_special=True)
    assert groups.group_for("buyer.example") == "google"  # stale hosts beat no hosts
    assert dns.asked == ["buyer.example", "buyer.example"]
    dns.answers["new.example"] = MxLookupFailed("SERVFAIL")
    assert groups.group_for("new.example") == OTHER  # never blocks: grouped by name only
