"""All of Sendwell's settings, read once from SENDWELL_* variables and the data folder.

Config sits below every context: besides the standard library and pydantic it imports only
the leaf parsers of its string settings (caps, windows, region map, webhook endpoints, the
role-address list), which import nothing of Sendwell themselves. Each string setting is
checked when the object is built and parsed into its typed value once per object, on first
use (cached on the object).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sendwell.contacts.regions import parse_region_map
from sendwell.contacts.roles import ROLE_ADDRESSES
from sendwell.policy.caps import Cap, parse_caps
from sendwell.policy.windows import SendWindow, parse_windows
from sendwell.webhooks.endpoints import Endpoint, parse_endpoints

CONFIG_FILE_NAME = "sendwell.env"


class Settings(BaseSettings):
    """Settings for every adapter; defaults boot the embedded shape with zero setup."""

    # Frozen: a running process never changes a setting in place, it swaps in a new object
    # (replace, Runtime.replace_settings), so the values parsed from the old text cannot go stale.
    model_config = SettingsConfigDict(
        env_prefix="SENDWELL_", extra="ignore", populate_by_name=True, env_ignore_empty=True, frozen=True
    )

    data_dir: Path = Field(default=Path(".sendwell"))
    database_url: str = ""
    # PostgreSQL connections per process: pool + overflow (docs/operations.md, connection budget).
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for log shippers
    queue_url: str = ""  # "" = embedded Huey on SQLite in the data folder; redis://… for scale-out
    queue_name: str = "sendwell"  # the Huey queue (Redis key prefix); one per installation
    smtp_url: str = "capture"  # smtp://host:port, smtps://user:pass@host:port, or capture
    smtp_timeout: float = 30.0
    smtp_ca_file: str = ""  # PEM bundle to trust for STARTTLS / smtps (default: the system's)
    # Delivery engine (docs/delivery.md): concurrency, throttling, retries, leases.
    smtp_concurrency: int = Field(default=4, ge=1, le=256)  # SMTP sessions (threads) per process
    # Delivery processes of `campaigns send --wait` and `serve`, this one included: "auto" (or 0) = one
    # per core; 1 = one process (docs/delivery.md, "Processes").
    delivery_processes: Annotated[int, Field(ge=0, le=256)] | Literal["auto"] = "auto"
    # Shared by every worker (on Redis, or a file in the data folder): mails per second over all (0 = none), and per domain.
    rate_limit: float = Field(default=0.0, ge=0)
    domain_limits: str = ""  # "gmail.com=50,outlook.com=30"
    # Provider groups (docs/delivery.md, "Provider groups"): a recipient domain's group comes from its name
    # or its MX hosts. Extra groups, name=glob|glob on the domain or an MX host ("acme=*.acme.example|mx*.acme-
    # mail.example"), and limits per group over the defaults ("google=20/s;5000/h,acme=5/s;conn=4").
    provider_groups: str = ""
    provider_limits: str = ""
    provider_max_wait: float = Field(default=2.0, ge=0)  # seconds a mail waits for its group; longer: deferred
    provider_recover_seconds: float = Field(default=10.0, gt=0)  # after a slow-down, each clean period adds a tenth
    retry_base_seconds: float = Field(default=300.0, gt=0)  # first retry after 4xx / connection error
    retry_max_delay_seconds: float = Field(default=6 * 3600.0, gt=0)  # backoff cap
    retry_max_age_hours: float = Field(default=72.0, gt=0)  # give up this long after the first attempt
    # Warm-up (docs/delivery.md, "Warm-up"): the daily allowance per provider group of a new plan,
    # "50,100,200,…" for every group and "group=…" overrides after ";"; "" = the built-in schedule.
    warmup_schedule: str = Field(default="", pattern=r"^[\w\s.,;=-]*$")
    lease_seconds: float = Field(default=600.0, gt=0)  # a claimed batch is recovered after this
    # Delivery processes heartbeat (sendwell.db.processes); one silent for heartbeat_timeout (or a dead
    # pid on this machine, at once) has its claims recovered; the lease is the backstop for a stuck one.
    heartbeat_interval: float = Field(default=2.0, gt=0)
    heartbeat_timeout: float = Field(default=15.0, gt=0)
    outbox_poll_seconds: float = Field(default=2.0, gt=0)  # how often `sendwell worker` looks for follow-ups
    recovery_interval: float = Field(default=5.0, gt=0)  # seconds between recovery scans
    batch_size: int = Field(default=200, ge=1, le=10000)
    base_url: str = "http://127.0.0.1:8025"
    secret_key: str = ""  # comma-separated, newest last; generated by `sendwell init` if empty
    # Reverse proxies whose X-Forwarded-For / -Proto are believed: comma-separated IPs or CIDRs;
    # empty = none (not even loopback), so the per-IP sign-in limit counts the real peer.
    trusted_proxies: str = ""
    # Pepper for the suppression hashes; never rotated, or erased contacts' opt-outs are lost.
    hash_pepper: str = ""

    dkim_domain: str = ""
    dkim_selector: str = "sendwell"
    dkim_key_file: str = ""
    # An optional second signature with Ed25519 (RFC 8463 §2: sign with both during the transition).
    dkim_ed25519_selector: str = ""
    dkim_ed25519_key_file: str = ""

    from_: str = Field(
        default="Sendwell Demo Exports <sales@sendwell.example>", validation_alias=AliasChoices("SENDWELL_FROM", "from_")
    )
    company_name: str = "Sendwell Demo Exports Co., Ltd."
    postal_address: str = "No. 1 Example Road, Ningbo, Zhejiang 315000, China"
    contact_email: str = "sales@sendwell.example"
    contact_phone: str = ""
    website: str = ""
    privacy_url: str = ""
    list_id_name: str = "newsletter"
    # Country → region overrides for the audience, e.g. "HK=cn,MO=cn,CH=eu" (contacts/regions.py).
    region_map: str = ""

    click_tracking: bool = True  # signed redirect links, plus one hidden trap link that only machines click
    # The open pixel is off by default: it costs readers privacy, and image proxies (Apple MPP,
    # Gmail, Yahoo) fetch it for every mail, so most opens are machines anyway.
    open_tracking: bool = False
    machine_click_seconds: float = 10.0  # a click this soon after sending is a link scanner, not a person

    # Insight: spike alerts and the circuit breaker (COMPLIANCE rows 25 and 29).
    alert_unsubscribe_warn: float = 0.005
    alert_unsubscribe_critical: float = 0.010
    alert_complaint_warn: float = 0.001
    alert_complaint_critical: float = 0.003
    alert_hard_bounce_warn: float = 0.05
    alert_hard_bounce_critical: float = 0.10
    alert_min_sample: int = 100
    alert_check_interval: float = 5.0  # seconds between rate checks of one campaign, per worker
    # Inbound feedback (bounces, mailto / reply opt-outs, provider webhooks).
    inbound_domains: str = ""  # comma-separated; "" = the From address's domain
    inbound_host: str = "127.0.0.1"
    inbound_port: int = 2525
    # DNS: "host[:port],…" queried instead of the system's resolver (split-horizon DNS, tests); "" = system.
    dns_nameservers: str = ""
    dns_timeout: float = Field(default=5.0, gt=0)  # seconds per DNS lookup, all tries included
    # Sender-domain check (docs/delivery.md, "Sender domain"): the IPs mail leaves from, when known
    # (comma-separated; "" = the relay of smtp_url sends), how long a check result is trusted, and
    # the audience (recipients/day) from which a failing domain blocks a marketing send.
    sending_ips: str = ""
    domain_check_ttl: float = Field(default=3600.0, ge=0)  # seconds; 0 = check at every campaign start
    bulk_threshold: int = Field(default=5000, ge=0)
    sendgrid_public_key: str = ""  # the Event Webhook verification key (base64 DER or PEM)
    ses_topic_arns: str = ""  # comma-separated SNS topic ARNs accepted; required: "" refuses every SES message
    # Opt-out follow-ups (sendwell.optout): which regions get the thank-you mail after an
    # unsubscribe ("all", "none", or e.g. "eu,uk,us"), and outbound webhooks to a CRM.
    thank_you_regions: str = "all"
    signup_expire_days: int = Field(default=7, ge=1, le=90)  # unconfirmed signups are deleted after this
    # Comma-separated endpoints, each `URL [event-type ...]` (none = every event type);
    # empty = no webhooks. See sendwell.webhooks.endpoints.parse_endpoints.
    webhook_urls: str = ""
    webhook_secret: str = ""  # Standard Webhooks key (`whsec_`…); empty = made on first need, never the secret key
    # Frequency policy (docs/policy.md): caps as name=COUNT/PERIOD, periods in h, d or w.
    stage_caps: str = "new_lead=2/30d,prospect=1/7d,customer=3/30d"
    tier_caps: str = "weekly=1/7d,monthly=1/30d"
    # Sending window in the recipient's local time, e.g. "mon-fri 09:00-17:00" for every
    # region, or per region: "mon-fri 09:00-17:00; us=mon-fri 08:00-18:00". Empty = any time.
    send_window: str = ""
    # List hygiene (docs/hygiene.md): the sunset flow, address cleaning and the scheduler.
    sunset_days: int = Field(default=180, ge=1)  # no engagement this long → re-engagement
    reconfirm_days: int = Field(default=30, ge=1)  # no answer this long after the ask → suppressed (sunset)
    # Local parts flagged as role addresses (a team's mailbox, not a person's consent).
    role_addresses: str = ROLE_ADDRESSES  # comma-separated local parts
    mx_check: bool = False  # look up each domain's MX when flagging addresses (needs DNS; off in tests)
    hygiene_interval_hours: float = Field(default=24.0, ge=0)  # between scheduled passes; 0 = never

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str) -> str:
        if value != "capture" and not value.startswith(("smtp://", "smtps://")):
            raise ValueError("SENDWELL_SMTP_URL must be smtp://host:port, smtps://…, or capture")
        return value

    @field_validator("stage_caps", "tier_caps")
    @classmethod
    def _check_caps(cls, value: str) -> str:
        parse_caps(value, setting="SENDWELL_STAGE_CAPS / SENDWELL_TIER_CAPS")
        return value

    @field_validator("send_window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        parse_windows(value, setting="SENDWELL_SEND_WINDOW")
        return value

    @field_validator("region_map")
    @classmethod
    def _check_region_map(cls, value: str) -> str:
        parse_region_map(value)  # ValueError names the bad entry
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _check_webhook_urls(cls, value: str) -> str:
        parse_endpoints(value)  # ValueError names the bad URL or event type
        return value

    @field_validator("domain_limits")
    @classmethod
    def _check_domain_limits(cls, value: str) -> str:
        parse_domain_limits(value)
        return value

    @field_validator("provider_groups")
    @classmethod
    def _check_provider_groups(cls, value: str) -> str:
        parse_provider_groups(value)
        return value

    @field_validator("provider_limits")
    @classmethod
    def _check_provider_limits(cls, value: str) -> str:
        parse_provider_limits(value)
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the config file in the data folder (DESIGN.md).
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        return (init_settings, env_settings, _DataDirFileSource(settings_cls, init_kwargs.get("data_dir")))

    # ---- derived values -------------------------------------------------
    # Typed values parsed from the strings above, once per object (cached_property); a new
    # Settings object (replace) starts with none of them.
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'sendwell.db').resolve()}"

    @cached_property
    def from_address(self) -> str:
        return parseaddr(self.from_)[1]

    @cached_property
    def sender_domain(self) -> str:
        return self.from_address.rpartition("@")[2] or "sendwell.example"

    @cached_property
    def secret_keys(self) -> list[str]:
        """Signing keys, newest last; the newest signs, all verify."""
        keys = [k.strip() for k in self.secret_key.split(",") if k.strip()]
        if not keys:
            raise RuntimeError("no SENDWELL_SECRET_KEY configured: run `sendwell init` first")
        return keys

    @property
    def pepper(self) -> bytes:
        if not self.hash_pepper:
            raise RuntimeError("no SENDWELL_HASH_PEPPER configured: run `sendwell init` first")
        return self.hash_pepper.encode()

    @cached_property
    def inbound_domain_list(self) -> list[str]:
        """Domains whose bounce+, unsubscribe+ and reply addresses Sendwell receives mail for."""
        domains = [d.strip().lower() for d in self.inbound_domains.split(",") if d.strip()]
        return domains or [self.sender_domain.lower()]

    @cached_property
    def role_address_set(self) -> frozenset[str]:
        return frozenset(p.strip().lower() for p in self.role_addresses.split(",") if p.strip())

    @cached_property
    def webhook_endpoints(self) -> list[Endpoint]:
        """The webhook endpoints with the event types each one subscribes to."""
        return parse_endpoints(self.webhook_urls)

    @cached_property
    def webhook_url_list(self) -> list[str]:
        return [e.url for e in self.webhook_endpoints]

    @cached_property
    def thank_you_region_set(self) -> frozenset[str] | None:
        """The regions that get the thank-you mail: None for every region ("all" or empty)."""
        value = self.thank_you_regions.strip().lower()
        if value in ("", "all"):
            return None
        if value == "none":
            return frozenset()
        return frozenset(r.strip() for r in value.split(","))

    @cached_property
    def region_overrides(self) -> dict[str, str]:
        return parse_region_map(self.region_map)

    @cached_property
    def stage_cap_rules(self) -> dict[str, Cap]:
        return parse_caps(self.stage_caps, setting="SENDWELL_STAGE_CAPS")

    @cached_property
    def tier_cap_rules(self) -> dict[str, Cap]:
        return parse_caps(self.tier_caps, setting="SENDWELL_TIER_CAPS")

    @cached_property
    def send_windows(self) -> dict[str, SendWindow]:
        """Region (or "*" for every region) → sending window."""
        return parse_windows(self.send_window, setting="SENDWELL_SEND_WINDOW")

    @cached_property
    def domain_limit_map(self) -> dict[str, float]:
        """SENDWELL_DOMAIN_LIMITS as destination domain → mails per second."""
        return parse_domain_limits(self.domain_limits)

    @property
    def capture_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_FILE_NAME

    def replace(self, **changes: Any) -> Settings:
        """A new, validated Settings object with these fields changed (environment and file not re-read)."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Settings:
        """As pydantic's, but a copy with changes is built by `replace`: validated, and without the
        parsed values cached from the old text (pydantic copies the instance dictionary)."""
        if update:
            return self.replace(**update)
        return super().model_copy(deep=deep)


class _DataDirFileSource(PydanticBaseSettingsSource):
    """Reads KEY=value lines from <data_dir>/sendwell.env (written by `sendwell init`)."""

    def __init__(self, settings_cls: type[BaseSettings], data_dir: Any = None) -> None:
        super().__init__(settings_cls)
        self.data_dir = data_dir

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data_dir = Path(self.data_dir or os.environ.get("SENDWELL_DATA_DIR", ".sendwell"))
        return read_config_file(data_dir / CONFIG_FILE_NAME)


def read_config_file(path: Path) -> dict[str, str]:
    """Parse a KEY=value file into lower-case setting names (SENDWELL_ prefix optional).

    Lines end at "\n" only (a "\r" before it is dropped): str.splitlines would also break at
    U+2028, U+0085 … and let a value smuggle in a second setting. A value in double quotes
    may hold the escapes `write_config_values` writes.
    """
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for lineno, raw in enumerate(_lines(path), 1):
        line = raw.strip(" \t")
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}:{lineno}: expected KEY=value, got {raw!r}")
        key = key.strip().upper().removeprefix("SENDWELL_").lower()
        values["from_" if key == "from" else key] = _unquote(value.strip(" \t"))
    return values


def write_config_values(path: Path, values: dict[str, str]) -> None:
    """Set KEY=value lines in a config file, keeping the other lines as they are.

    A value with anything beyond plain URL and path characters is written in double quotes
    with its quotes, backslashes and control characters escaped, so it always stays one line.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = _lines(path) if path.exists() else []
    pending = {f"SENDWELL_{k.upper().rstrip('_')}": v for k, v in values.items()}
    out = []
    for line in lines:
        key = line.partition("=")[0].strip().upper()
        if key in pending:
            out.append(f"{key}={_quote(pending.pop(key))}")
        else:
            out.append(line)
    out.extend(f"{k}={_quote(v)}" for k, v in pending.items())
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    tmp.replace(path)


_PLAIN = re.compile(r"[A-Za-z0-9_./:@,=+%*~-]*")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")] if text else []


def _quote(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value  # nothing to escape: keep the file as readable as `sendwell init` made it
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif unicodedata.category(char) in ("Cc", "Zl", "Zp"):  # \v \f \x1c-\x1e \x85 U+2028 U+2029 …
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _unquote(value: str) -> str:
    if not value.startswith('"'):
        return value.strip('"')  # as files written before values were quoted were read
    out: list[str] = []
    i = 1
    while i < len(value):
        char = value[i]
        if char == '"':
            return "".join(out)
        if char == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt in _UNESCAPES:
                out.append(_UNESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", value[i + 2:i + 6]):
                out.append(chr(int(value[i + 2:i + 6], 16)))
                i += 6
                continue
        out.append(char)  # an unknown escape stays as typed (a Windows path, say)
        i += 1
    return "".join(out).rstrip('"')  # no closing quote: read it as written


def parse_domain_limits(value: str) -> dict[str, float]:
    """`gmail.com=50,outlook.com=30` → {"gmail.com": 50.0, "outlook.com": 30.0} (mails per second)."""
    limits: dict[str, float] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        domain, sep, rate = item.partition("=")
        domain = domain.strip().lower().rstrip(".")
        try:
            per_second = float(rate) if sep else -1.0
        except ValueError:
            per_second = -1.0
        if not domain or "." not in domain or per_second <= 0:
            raise ValueError(f"SENDWELL_DOMAIN_LIMITS: {item!r} is not domain=mails_per_second (e.g. gmail.com=50)")
        limits[domain] = per_second
    return limits


_GROUP_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_GLOB = re.compile(r"[a-z0-9*?._\[\]-]+")


def parse_provider_groups(value: str) -> dict[str, tuple[str, ...]]:
    """`acme=*.acme.example|mx*.acme-mail.example,…` → {"acme": ("*.acme.example", "mx*.acme-mail.example")}.

    Each glob is matched (fnmatch) on the recipient's domain and on its MX host names.
    """
    groups: dict[str, tuple[str, ...]] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, globs = item.partition("=")
        name = name.strip().lower()
        patterns = tuple(g.strip().lower().rstrip(".") for g in globs.split("|") if g.strip())
        if not sep or not _GROUP_NAME.fullmatch(name) or not patterns or not all(map(_GLOB.fullmatch, patterns)):
            raise ValueError(f"SENDWELL_PROVIDER_GROUPS: {item!r} is not name=glob|glob "
                             "(e.g. acme=*.acme.example|mx*.acme-mail.example)")
        groups[name] = groups.get(name, ()) + patterns
    return groups


_PER = {"s": "per_second", "m": "per_minute", "h": "per_hour", "d": "per_day"}
_KEYED = {"burst": "burst", "conn": "connections", "per_conn": "per_connection"}


def parse_provider_limits(value: str) -> dict[str, dict[str, float]]:
    """`google=20/s;5000/h,acme=5/s;conn=4` → {"google": {"per_second": 20, "per_hour": 5000}, …}.

    Parts of one group's limit, separated by `;`: N/s, N/m, N/h, N/d (mails per second, minute,
    hour, day), burst=N (mails sent at once before the per-second pace applies), conn=N (SMTP
    sessions sending to the group at once), per_conn=N (mails per SMTP session), or `off` (no limit for the group).
    """
    limits: dict[str, dict[str, float]] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, spec = item.partition("=")
        name = name.strip().lower()
        parts = [p.strip().lower() for p in spec.split(";") if p.strip()]
        limit: dict[str, float] = {}
        ok = bool(sep) and bool(_GROUP_NAME.fullmatch(name)) and bool(parts)
        for part in parts if ok else ():
            if part == "off":
                continue
            number, per, unit = part.partition("/")
            if not per:
                key, eq, number = part.partition("=")
                field = _KEYED.get(key.strip()) if eq else None
            else:
                field = _PER.get(unit.strip())
            try:
                amount = float(number)
            except ValueError:
                amount = -1.0
            if field is None or amount <= 0:
                ok = False
                break
            limit[field] = amount
        if not ok:
            raise ValueError(f"SENDWELL_PROVIDER_LIMITS: {item!r} is not group=N/s;N/h;N/d;conn=N;per_conn=N "
                             "(e.g. google=20/s;5000/h)")
        limits[name] = limit
    return limits


def load_settings(**overrides: Any) -> Settings:
    """Build the settings object once at the entry point."""
    return Settings(**overrides)
