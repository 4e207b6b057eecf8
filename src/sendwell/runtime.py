"""The objects an entry point builds once from settings: engine, sessions, transport, signer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings, parse_domain_limits
from sendwell.db.session import engine_for, make_session_factory
from sendwell.delivery.deliverer import Deliverer, FailureHook, RateCheck
from sendwell.delivery.dkim import load_signer
from sendwell.delivery.ports import Signer, Throttle
from sendwell.delivery.throttle import Throttle as TokenThrottle
from sendwell.feedback.service import smtp_refusal_hook
from sendwell.insight.alerts import Thresholds, check_campaign
from sendwell.keys import check_keys, recorded_fingerprints
from sendwell.mail.transport import make_transport

# Cached properties built from settings, dropped by replace_settings so they are built again.
_FROM_SETTINGS = ("signer", "throttle", "keys_checked")


@dataclass
class Runtime:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

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
    def throttle(self) -> Throttle | None:
        """The process's rate limits (SENDWELL_RATE_LIMIT, SENDWELL_DOMAIN_LIMITS), shared by its deliverers."""
        throttle = TokenThrottle(rate=self.settings.rate_limit, domains=parse_domain_limits(self.settings.domain_limits))
        return throttle if throttle.active else None

    @cached_property
    def keys_checked(self) -> bool:
        """Raises KeyMismatch when these settings' keys are not the installation's (database record)."""
        if recorded_fingerprints(self.engine):
            check_keys(self.settings, self.engine)
        return True

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
