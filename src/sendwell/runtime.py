"""The objects an entry point builds once from settings: engine, sessions, transport, signer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.db.models import StoredSetting
from sendwell.db.session import engine_for, make_session_factory
from sendwell.delivery.deliverer import Deliverer, FailureHook, RateCheck
from sendwell.delivery.dkim import load_signer
from sendwell.delivery.ports import Signer
from sendwell.delivery.throttle import Throttle
from sendwell.feedback.service import smtp_refusal_hook
from sendwell.insight.alerts import Thresholds, check_campaign
from sendwell.keys import check_keys, local_fingerprints, recorded_fingerprints
from sendwell.mail.transport import make_transport
from sendwell.settings_edit import apply_stored, refresh_from_file, stored_values

# Cached properties built from settings, dropped by replace_settings so they are built again.
_FROM_SETTINGS = ("signer", "throttle", "keys_checked", "fingerprints")


@dataclass
class Runtime:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    # The fields stored in the database at the last look (None before the first): a row
    # deleted since then sends its field back to sendwell.env or the default.
    _stored: frozenset[str] | None = field(default=None, init=False, repr=False)

    @cached_property
    def engine(self) -> Engine:
        return self._engine or engine_for(self.settings)

    @cached_property
    def factory(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def signer(self) -> Signer | None:
        """The DKIM signer, or None when no key is configured."""
        if not (self.settings.dkim_domain and self.settings.dkim_key_file):
            return None
        return load_signer(self.settings)

    @cached_property
    def throttle(self) -> Throttle:
        """Limits per provider group, recipient domain and overall, shared by every worker (delivery/throttle.py)."""
        return Throttle.from_settings(self.settings, self.factory)

    @cached_property
    def keys_checked(self) -> bool:
        """Raises KeyMismatch when these settings' keys are not the installation's (database record)."""
        if recorded_fingerprints(self.engine):
            check_keys(self.settings, self.engine)
        return True

    @cached_property
    def fingerprints(self) -> dict[str, str]:
        """Fingerprints of this process's secret key, pepper and DKIM key (keys.local_fingerprints), never
        the keys; {"error": why} when a key cannot be read. Built once per settings: /healthz does no I/O."""
        try:
            return local_fingerprints(self.settings)
        except Exception as exc:  # an unreadable DKIM key file: /readyz and the deliverer name it
            return {"error": f"{type(exc).__name__}: {exc}"}

    @property
    def stored_fields(self) -> frozenset[str]:
        """The editable settings the database held at the last look (settings_edit.EDITABLE names)."""
        return self._stored or frozenset()

    def load_stored_settings(self) -> list[str]:
        """Apply the settings saved in the admin (the database) that differ from what runs.

        Precedence: environment > database > sendwell.env > default; a field the environment
        sets keeps its value. Run at start (before the database has the table, nothing to do)
        and on every scan. Returns the names of the fields that changed.
        """
        if self._stored is None and not inspect(self.engine).has_table(StoredSetting.__tablename__):
            return []
        with self.factory() as session:
            stored = stored_values(session)
        dropped = (self._stored or frozenset()) - stored.keys()
        self._stored = frozenset(stored)
        changed = apply_stored(self.settings, stored, dropped)
        if changed is None:
            return []
        self.replace_settings(changed[0])
        return changed[1]

    def refresh_settings(self) -> list[str]:
        """The periodic scan: settings saved in the admin (database), then this machine's sendwell.env
        for the fields the database does not hold. Returns the names of the fields that changed."""
        applied = self.load_stored_settings()
        from_file = refresh_from_file(self.settings, skip=self._stored or frozenset())
        if from_file is not None:
            self.replace_settings(from_file[0])
            applied += from_file[1]
        return applied

    def replace_settings(self, new: Settings) -> None:
        """Run on `new` settings from now on: the signer and throttle are built again from them.

        Deliverers made by make_deliverer switch at their next batch. The engine stays: the
        database is not changed under a running process.
        """
        self.settings = new
        for name in _FROM_SETTINGS:
            self.__dict__.pop(name, None)

    def delivery_failure_hooks(self) -> list[FailureHook]:
        """Called with (session, send_id=, code=, message=) when a send fails permanently (5xx).

        The bounce policy judges the refusal like a bounce report, in the same transaction
        that records the failure: a 550 5.1.1 suppresses the address at once.
        """
        def on_refusal(session: Session, **refusal: Any) -> None:
            # Built per refusal (rare) from the current settings, so a reload reaches it.
            smtp_refusal_hook(self.settings)(session, **refusal)

        return [on_refusal]

    def delivery_rate_check(self) -> RateCheck:
        """The circuit breaker, run on the deliverer's tick and after each batch: pauses a campaign on a spike."""
        def check(session: Session, campaign_id: int) -> None:
            check_campaign(session, campaign_id=campaign_id, thresholds=Thresholds.from_settings(self.settings))

        return check

    def make_deliverer(self, should_stop: Callable[[], bool] | None = None) -> Deliverer:
        """A deliverer with its own SMTP session; make one per thread.

        Refuses (KeyMismatch, naming the key) when this process's keys are not the installation's:
        its one-click links would be refused by the web process and its DKIM key is not in DNS.
        """
        self.keys_checked  # noqa: B018  (built once per settings; raises KeyMismatch)
        transport = make_transport(
            self.settings.smtp_url, self.settings.capture_dir, timeout=self.settings.smtp_timeout,
            ca_file=self.settings.smtp_ca_file,
        )
        deliverer = Deliverer(settings=self.settings, factory=self.factory, transport=transport, signer=self.signer,
                              throttle=self.throttle, failure_hooks=self.delivery_failure_hooks(),
                              rate_check=self.delivery_rate_check(), settings_source=lambda: self.settings)
        if should_stop is not None:
            deliverer.should_stop = should_stop
        return deliverer

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
