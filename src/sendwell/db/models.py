"""SQLAlchemy 2 models: the one source of truth for every context.

One cohesive file on purpose: every table, its constraints and indexes in one place, the
schema Alembic's migrations are checked against (tests/db/test_migrations.py).
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy import LargeBinary
from sqlalchemy import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names so Alembic batch mode on SQLite and PostgreSQL agree.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on PostgreSQL, INTEGER (rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Stage(str, enum.Enum):
    NEW_LEAD = "new_lead"
    PROSPECT = "prospect"
    CUSTOMER = "customer"


class ConsentKind(str, enum.Enum):
    EXPRESS = "express"
    IMPLIED_PURCHASE = "implied_purchase"  # CASL s10(10): 2 years
    IMPLIED_INQUIRY = "implied_inquiry"  # CASL s10(10): 6 months
    SOFT_OPT_IN = "soft_opt_in"
    LEGITIMATE_INTEREST_B2B = "legitimate_interest_b2b"
    # Old spelling kept so existing code and rows still load; migration 0003 rewrites the
    # rows and the import maps the old word to the new one.
    LEGITIMATE_INTEREST = "legitimate_interest"


class ConsentSource(str, enum.Enum):
    """How a consent was obtained (GDPR Art 7(1), CASL s13: the proof says how)."""

    WEB_FORM = "web_form"
    TRADE_FAIR = "trade_fair"
    IMPORT_FILE = "import_file"
    PURCHASE = "purchase"
    API = "api"
    RESUBSCRIBE = "resubscribe"


class CampaignKind(str, enum.Enum):
    MARKETING = "marketing"
    LAUNCH = "launch"
    TRANSACTIONAL = "transactional"
    RECONFIRMATION = "reconfirmation"


class CampaignStatus(str, enum.Enum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # a draft with a start time; unschedule to edit it again
    SENDING = "sending"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class SendState(str, enum.Enum):
    PLANNED = "planned"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"


class SuppressionReason(str, enum.Enum):
    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE_STREAK = "soft_bounce_streak"
    SUNSET = "sunset"
    MANUAL = "manual"
    ERASED = "erased"


SCOPE_ALL = "all"  # suppression scope: all marketing; otherwise a topic slug


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # The peppered hash of the lower-cased address: one contact per address whatever its case.
    email_hash: Mapped[str] = mapped_column(String(64), index=True, unique=True)
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str] = mapped_column(String(300), default="")
    job_title: Mapped[str] = mapped_column(String(200), default="")
    industry: Mapped[str] = mapped_column(String(100), default="", index=True)
    stage: Mapped[str] = mapped_column(String(20), default=Stage.NEW_LEAD.value, index=True)
    country: Mapped[str] = mapped_column(String(2), default="", index=True)
    region: Mapped[str] = mapped_column(String(10), default="other", index=True)
    language: Mapped[str] = mapped_column(String(10), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    tags: Mapped[list[str]] = mapped_column(default=list)
    custom: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(200), default="")
    frequency_tier: Mapped[str] = mapped_column(String(20), default="default")
    paused_until: Mapped[datetime | None] = mapped_column(default=None)
    last_engaged_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    consents: Mapped[list[Consent]] = relationship(back_populates="contact")


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("contact_id", "topic_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="subscribed")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Consent(Base):
    """Proof of consent (GDPR Art 7(1), CASL s13): who, when, how, wording shown, withdrawal."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(200))
    obtained_at: Mapped[datetime] = mapped_column(default=utcnow)
    ip: Mapped[str] = mapped_column(String(64), default="")
    wording: Mapped[str] = mapped_column(Text, default="")
    # SHA-256 of the wording shown, when only the hash is kept (or alongside the text).
    wording_hash: Mapped[str] = mapped_column(String(64), default="", server_default="")
    source_kind: Mapped[str] = mapped_column(String(20), default="", server_default="")
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    withdrawn_at: Mapped[datetime | None] = mapped_column(default=None)

    contact: Mapped[Contact] = relationship(back_populates="consents")


class ImportBatch(Base):
    """One import run from the admin: the file, who ran it and what it did (the import history)."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    filename: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(200), default="")
    imported_by: Mapped[str] = mapped_column(String(320), default="")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    written: Mapped[bool] = mapped_column(Boolean, default=False)  # False: all or nothing refused the file


class ImportRejection(Base):
    """A rejected row of an import run: row number, field and the reason as a message template."""

    __tablename__ = "import_rejections"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"), index=True)
    row: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(100))
    template: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Vocabulary(Base):
    """Operator-added values of a controlled vocabulary (industries, stages) beyond the built-in ones."""

    __tablename__ = "vocabulary"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200), default="")
    aliases: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    expression: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(500))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    segment_expr: Mapped[str] = mapped_column(Text, default="")
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id"), default=None)
    kind: Mapped[str] = mapped_column(String(20), default=CampaignKind.MARKETING.value)
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT.value)
    # Over-cap handling (frequency policy): skip the contact, or defer the mail to the earliest time
    # the caps allow. `policy` is the frequency policy snapshotted at planning, so the
    # re-check at claim time applies the same rules the plan did.
    over_cap: Mapped[str] = mapped_column(String(10), default="skip", server_default="skip")
    policy: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When a scheduled campaign starts (status `scheduled`); the worker's scan starts it.
    scheduled_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the insight roll-up counted this campaign's delivered mails (after it finished).
    delivered_rolled_up_at: Mapped[datetime | None] = mapped_column(default=None)

    topic: Mapped[Topic | None] = relationship()


class ArchivedCampaign(Base):
    """A finished or cancelled campaign set aside: hidden from the default list, kept with its sends and report."""

    __tablename__ = "archived_campaigns"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    archived_at: Mapped[datetime] = mapped_column(default=utcnow)


class TransactionalConfirmation(Base):
    """An admin's word that a campaign labelled transactional is transactional (it then skips consent,
    caps and pauses); their email and the time are the audit. Changing the content or audience drops it."""

    __tablename__ = "transactional_confirmations"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    confirmed_by: Mapped[str] = mapped_column(String(320))
    confirmed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignupForm(Base):
    """A signup form (hosted at /f/ID or embedded): the fields shown, topic choices, language,
    the consent text shown (every edit is a new version, all kept) and the check-your-inbox text."""

    __tablename__ = "signup_forms"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    fields: Mapped[list[str]] = mapped_column(default=list)  # contact fields shown besides the address
    topics: Mapped[list[str]] = mapped_column(default=list)  # slugs of the topics offered
    language: Mapped[str] = mapped_column(String(10), default="en")
    # Version N is consent_texts[N - 1]: a signup's proof names the version it saw.
    consent_texts: Mapped[list[str]] = mapped_column(default=list)
    thanks_text: Mapped[str] = mapped_column(Text, default="")
    expired: Mapped[int] = mapped_column(Integer, default=0)  # unconfirmed signups deleted so far
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Signup(Base):
    """One person's signup through a form: pending until they confirm by the mailed link (double opt-in)."""

    __tablename__ = "signups"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("signup_forms.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    topics: Mapped[list[str]] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(String(10), default="en")
    consent_version: Mapped[int] = mapped_column(Integer)
    ip: Mapped[str] = mapped_column(String(64), default="", index=True)
    user_agent: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), default=None)


class MailTemplate(Base):
    """A saved mail template (subject and HTML) a campaign can start from (sendwell.content.templates)."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(500), default="")
    html: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(320), default="")  # the admin's email ("" from the CLI)
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BrandLayout(Base):
    """The one brand layout (row id 1) put around every campaign's content at render (sendwell.content.brand)."""

    __tablename__ = "brand_layout"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    logo: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)  # PNG, JPEG or GIF, size-limited
    logo_type: Mapped[str] = mapped_column(String(20), default="")  # its media type
    logo_version: Mapped[str] = mapped_column(String(16), default="")  # in the logo's URL: a new logo, a new URL
    colour: Mapped[str] = mapped_column(String(7), default="")  # accent: the header's rule, #rrggbb
    background: Mapped[str] = mapped_column(String(7), default="")  # behind the header, #rrggbb
    header_html: Mapped[str] = mapped_column(Text, default="")
    footer_html: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Send(Base):
    """One recipient of one campaign; its state machine is DESIGN.md's."""

    __tablename__ = "sends"
    __table_args__ = (
        # Contact first: the constraint also serves per-contact lookups (caps, feedback), so
        # a plan maintains one index fewer per inserted row (migration 0015).
        UniqueConstraint("contact_id", "campaign_id"),
        Index("ix_sends_campaign_state", "campaign_id", "state"),
        # Partial: lease recovery only ever looks at sends in `sending`.
        Index("ix_sends_sending_lease", "lease_until",
              postgresql_where=text("state = 'sending'"), sqlite_where=text("state = 'sending'")),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(10), default=SendState.PLANNED.value)
    skip_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    message_id: Mapped[str | None] = mapped_column(String(255), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Crash safety (docs/delivery.md): the first attempt starts the give-up clock; in_flight_at
    # is set, durably, right before this send's SMTP transaction and cleared right after, so
    # lease recovery knows which mail a dead worker may already have handed to the server.
    first_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    in_flight_at: Mapped[datetime | None] = mapped_column(default=None)
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    # A fencing token written by each claim: a worker whose lease lapsed (and whose sends
    # were recovered and claimed again) can tell, and must not start their SMTP transactions.
    # "<delivery_processes.id>.<random hex>" for a registered claimer (delivery/claims.py).
    claim_token: Mapped[str | None] = mapped_column(String(32), default=None)


class Event(Base):
    """Something that happened to a contact: sent, unsubscribed, bounced, complained…"""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_kind_campaign", "kind", "campaign_id"),
        # Segment engagement rules (`clicked within 180 days`) look up by contact, kind, time.
        Index("ix_events_contact_kind_time", "contact_id", "kind", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True, default=None
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), default=None
    )
    send_id: Mapped[int | None] = mapped_column(
        ForeignKey("sends.id", ondelete="SET NULL"), default=None
    )
    method: Mapped[str] = mapped_column(String(30), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(500), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Opens and clicks by machines (image proxies, link scanners): stored, never engagement.
    # A column, not a JSON key, so segment and report queries filter on it in plain SQL.
    machine: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    machine_reason: Mapped[str] = mapped_column(String(30), default="", server_default="")


class Suppression(Base):
    """Never mail this address (in this scope) again; keyed by a peppered hash (GDPR erasure)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("email_hash", "scope"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(100), default=SCOPE_ALL)
    reason: Mapped[str] = mapped_column(String(30))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True, default=None
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(10))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), default=None
    )
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class InsightCounter(Base):
    """Incremental aggregates for dashboards: one count per campaign × dimension value × metric."""

    __tablename__ = "insight_counters"
    __table_args__ = (UniqueConstraint("campaign_id", "dimension", "value", "metric"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    dimension: Mapped[str] = mapped_column(String(20))  # all | stage | industry | region | country | language
    value: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(40))  # delivered | unsubscribed:<method> | complained | …
    count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)


class InsightCursor(Base):
    """How far the roll-up has read the events table."""

    __tablename__ = "insight_cursors"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)


class ApiToken(Base):
    """A REST API bearer token: only its SHA-256 is stored; shown once when created."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to recognise a token in lists
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
class AdminUser(Base):
    """A person who signs in to the web admin; only an argon2id hash of the password is kept."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="viewer")  # admin | marketer | viewer
    language: Mapped[str] = mapped_column(String(10), default="en")  # en | zh_Hans
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class AdminSessionRecord(Base):
    """One signed-in admin session; the cookie carries its id, and logout revokes it here."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class LoginFailure(Base):
    """One failed sign-in, keyed by `email:…` and `ip:…`; kept in the database so the throttle
    holds across web processes."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_time", "key", "occurred_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(400))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """Work that must follow a committed change (thank-you mail, magic link, webhook), written
    in the same transaction as the change so it is never lost and never sent for a rollback."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))  # thank_you | magic_link | confirm | event | webhook
    # Unique when set: the database itself refuses a second thank-you to one contact.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True, default=None
    )
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | skipped | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One attempt to POST a webhook event to one endpoint: the delivery log.

    No body and no address here: the log outlives an erased contact (its outbox row goes by
    the foreign key; `outbox_id` becomes NULL and the attempt stays as a statistic).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_event_type", "event_type", "id"),
                      Index("ix_webhook_deliveries_status", "status", "id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    outbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbox.id", ondelete="SET NULL"), index=True, default=None
    )
    endpoint: Mapped[str] = mapped_column(String(2000))
    event_type: Mapped[str] = mapped_column(String(50))
    event_id: Mapped[int] = mapped_column(Id)  # the `id` in the body: the same for every endpoint and retry
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))  # delivered | retrying | failed
    http_status: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_retry_at: Mapped[datetime | None] = mapped_column(default=None)


class Reengagement(Base):
    """One contact's pass through the sunset flow (docs/hygiene.md): inactive → asked → kept or sunset."""

    __tablename__ = "reengagements"
    __table_args__ = (Index("ix_reengagements_open", "resolved_at", "contact_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    # The last sign of life the pass saw: last engagement, else the latest consent, else creation.
    inactive_since: Mapped[datetime]
    entered_at: Mapped[datetime]
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), default=None
    )
    # When the reconfirmation mail reached the contact; the answer window starts here.
    asked_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(20), default=None)  # kept | engaged | left | sunset


class AddressFlag(Base):
    """Something address cleaning noticed: role address, disposable domain, likely typo, no MX."""

    __tablename__ = "address_flags"
    __table_args__ = (UniqueConstraint("contact_id", "flag"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    flag: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str] = mapped_column(String(300), default="")
    flagged_at: Mapped[datetime] = mapped_column(default=utcnow)


class HygieneRun(Base):
    """One hygiene pass and its report (what each job did or, in a dry run, would do)."""

    __tablename__ = "hygiene_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    as_of: Mapped[datetime]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger: Mapped[str] = mapped_column(String(20), default="cli")  # cli | scheduler | demo
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SchedulerLease(Base):
    """Who may run a periodic job now: one row per job, taken by a conditional UPDATE."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100), default="")
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    next_run_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackReview(Base):
    """A bounce or complaint that could not be tied to a mail we sent: kept for a person, never acted on."""

    __tablename__ = "feedback_reviews"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(20))  # smtp | maildir | mbox | imap | eml | ses | sendgrid
    kind: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(20))
    recipients: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str | None] = mapped_column(String(20), default=None)
    reason: Mapped[str] = mapped_column(String(500), default="")
    why: Mapped[str] = mapped_column(String(40))  # not_tied | forged_verp | recipient_mismatch
    raw_ref: Mapped[str] = mapped_column(String(100), default="", index=True)
    raw_size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[str] = mapped_column(Text, default="")  # the first 64 KiB, for a person to read


class ProviderMx(Base):
    """A recipient domain's MX hosts as last looked up, and until when they are trusted (delivery/providers.py)."""

    __tablename__ = "provider_mx"

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    mx_hosts: Mapped[str] = mapped_column(Text, default="")  # space-separated, by preference; "" = none
    provider: Mapped[str] = mapped_column(String(40), default="other")  # the group when looked up (for reading)
    checked_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class DmarcReport(Base):
    """One aggregate report: who sent it, for which domain and period; (org, report id) is unique."""

    __tablename__ = "dmarc_reports"
    __table_args__ = (UniqueConstraint("org_name", "report_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_name: Mapped[str] = mapped_column(String(200))  # lower-cased
    org_email: Mapped[str] = mapped_column(String(320), default="")
    report_id: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(253))  # policy_published/domain
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)  # p, sp, adkim, aspf, pct …
    begin_at: Mapped[datetime]
    end_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(20))  # smtp | maildir | mbox | imap | eml
    messages: Mapped[int] = mapped_column(Integer, default=0)  # the sum of the kept records' counts


class DmarcRecord(Base):
    """One <record> of a report about our domains: `count` mails from one source IP with one set of results."""

    __tablename__ = "dmarc_records"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("dmarc_reports.id", ondelete="CASCADE"), index=True)
    source_ip: Mapped[str] = mapped_column(String(45), index=True)
    count: Mapped[int] = mapped_column(Integer)
    disposition: Mapped[str] = mapped_column(String(20))
    dkim_aligned: Mapped[bool] = mapped_column(Boolean)
    spf_aligned: Mapped[bool] = mapped_column(Boolean)
    dkim_pass: Mapped[bool] = mapped_column(Boolean)
    spf_pass: Mapped[bool] = mapped_column(Boolean)
    header_from: Mapped[str] = mapped_column(String(253), default="")
    envelope_from: Mapped[str] = mapped_column(String(253), default="")
    # {"dkim": [[domain, result, selector], …], "spf": [[domain, result, scope], …], "reasons": […]}
    auth: Mapped[dict[str, Any]] = mapped_column(default=dict)


class InstallationKey(Base):
    """A fingerprint of one key every process of the installation must share (never the key itself)."""

    __tablename__ = "installation_keys"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)  # secret_key | hash_pepper | dkim
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class WarmupPlan(Base):
    """A warm-up plan for a new sending domain or IP: a daily allowance per provider group (delivery/warmup.py)."""

    __tablename__ = "warmup_plans"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(10))  # domain | ip
    target: Mapped[str] = mapped_column(String(255))
    starts_at: Mapped[datetime]  # midnight UTC of the plan's first day
    # {"*": [50, 100, …], "google": […]}: the allowance of day N is entry N-1; past the end, no limit.
    schedule: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)


class WarmupUsage(Base):
    """Mails granted so far on one day of a plan to one provider group: the counter every claimer shares."""

    __tablename__ = "warmup_usage"
    __table_args__ = (UniqueConstraint("plan_id", "day", "provider_group"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("warmup_plans.id", ondelete="CASCADE"))
    day: Mapped[int] = mapped_column(Integer)  # 0 = the plan's first day
    provider_group: Mapped[str] = mapped_column(String(50))
    used: Mapped[int] = mapped_column(Integer, default=0)


class WarmupRanking(Base):
    """One day's engaged-first cut of one campaign under one plan: per group, the rank key of the last send that may go."""

    __tablename__ = "warmup_rankings"
    __table_args__ = (UniqueConstraint("plan_id", "campaign_id", "day"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("warmup_plans.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    day: Mapped[int] = mapped_column(Integer)
    cutoffs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoredSetting(Base):
    """A setting saved in the admin, shared by every process (sendwell.settings_edit); the environment still wins."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # the SENDWELL_* name
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")  # the admin's email ("" outside the admin)


class DomainCheck(Base):
    """The last sender-domain check for one set of inputs (sendwell.deliverability): reused until it is older
    than SENDWELL_DOMAIN_CHECK_TTL, so a campaign start does not ask DNS again each time."""

    __tablename__ = "domain_checks"

    # sha256 of what the result depends on: domain, DKIM keys and selectors, sending IPs, relay, nameservers.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), index=True)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    blocking: Mapped[bool] = mapped_column(Boolean, default=False)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)  # DomainReport.as_dict()


class DeliveryProcess(Base):
    """A process that claims sends (worker, serve, send --wait): registered at its start,
    heartbeating while it runs, deleted at a clean exit (sendwell.db.processes)."""

    __tablename__ = "delivery_processes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    # Same host, boot and PID namespace: the pid can be looked up in /proc (dead at once).
    boot_id: Mapped[str] = mapped_column(String(64), default="")
    pid_namespace: Mapped[str] = mapped_column(String(64), default="")
    pid_started: Mapped[int] = mapped_column(BigInteger, default=0)  # /proc/PID/stat starttime: a reused pid differs
    role: Mapped[str] = mapped_column(String(20))  # worker | serve | send-wait
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class Sequence(Base):
    """A lifecycle sequence (sendwell.sequences): a trigger, steps with stable ids, exit rules, re-entry."""

    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | paused
    version: Mapped[int] = mapped_column(Integer, default=1)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reentry_days: Mapped[int | None] = mapped_column(Integer, default=None)  # None: never enter twice
    # High-water marks of the enrolment scan: the last event and the last contact looked at.
    events_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    contacts_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    # The date trigger's mark: dates up to this time have been looked at (None: since creation).
    dates_seen_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SequenceEnrollment(Base):
    """One pass of one contact through a sequence: where they are, when the next step is due, why they left."""

    __tablename__ = "sequence_enrollments"
    __table_args__ = (
        UniqueConstraint("sequence_id", "contact_id", "round"),
        Index("ix_sequence_enrollments_state_next_at", "state", "next_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    round: Mapped[int] = mapped_column(Integer, default=1)  # 2 and up: a re-entry
    step_id: Mapped[str] = mapped_column(String(100), default="")  # the step due next; "" once done
    next_at: Mapped[datetime | None] = mapped_column(default=None)
    state: Mapped[str] = mapped_column(String(10), default="active")  # active | done | exited
    exited_reason: Mapped[str] = mapped_column(String(40), default="")
    wait_reason: Mapped[str] = mapped_column(String(40), default="")  # why next_at is later than the step asked
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SequenceStepRun(Base):
    """A step done for one enrollment: at most one row per (enrollment, step), so each step runs once."""

    __tablename__ = "sequence_step_runs"
    __table_args__ = (UniqueConstraint("enrollment_id", "step_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("sequence_enrollments.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))  # mail | wait | branch | set | notify
    outcome: Mapped[str] = mapped_column(String(100), default="")  # branch taken, send state, …
    send_id: Mapped[int | None] = mapped_column(ForeignKey("sends.id", ondelete="SET NULL"), default=None)
    wait_reason: Mapped[str] = mapped_column(String(40), default="")  # frequency_cap, send_window, …
    done_at: Mapped[datetime] = mapped_column(default=utcnow)


class SequenceStepCampaign(Base):
    """The hidden campaign that carries one mail step's sends (per version and round) through delivery."""

    __tablename__ = "sequence_step_campaigns"
    __table_args__ = (UniqueConstraint("sequence_id", "version", "step_id", "round"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(100))
    round: Mapped[int] = mapped_column(Integer, default=1)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)


class SequenceVersion(Base):
    """A sequence's definition as it was at one version: what its in-flight contacts were placed by."""

    __tablename__ = "sequence_versions"
    __table_args__ = (UniqueConstraint("sequence_id", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
