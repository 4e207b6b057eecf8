"""The objects an entry point builds once from settings: engine, sessions, transport, signer."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.db.session import make_engine, make_session_factory


@dataclass
class Runtime:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

    @cached_property
    def engine(self) -> Engine:
        return self._engine or make_engine(self.settings.effective_database_url)

    @cached_property
    def factory(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def signer(self):  # type: ignore[no-untyped-def]
        """The DKIM signer, or None when no key is configured."""
        if not (self.settings.dkim_domain and self.settings.dkim_key_file):
            return None
        from sendwell.delivery.dkim import load_signer

        return load_signer(self.settings)

    @cached_property
    def throttle(self):  # type: ignore[no-untyped-def]
        """The process's rate limits (SENDWELL_RATE_LIMIT, SENDWELL_DOMAIN_LIMITS), shared by its deliverers."""
        from sendwell.config import parse_domain_limits
        from sendwell.delivery.throttle import Throttle

        throttle = Throttle(rate=self.settings.rate_limit, domains=parse_domain_limits(self.settings.domain_limits))
        return throttle if throttle.active else None

    def delivery_failure_hooks(self) -> list:  # type: ignore[type-arg]
        """Called with (session, send_id=, code=, message=) when a send fails permanently (5xx).

        The bounce policy judges the refusal like a bounce report, in the same transaction
        that records the failure: a 550 5.1.1 suppresses the address at once.
        """
        from sendwell.feedback.service import smtp_refusal_hook

        return [smtp_refusal_hook(self.settings)]

    def make_deliverer(self, should_stop=None):  # type: ignore[no-untyped-def]
        """A deliverer with its own SMTP session; make one per thread."""
        from sendwell.delivery.service import Deliverer
        from sendwell.delivery.transport import make_transport

        transport = make_transport(
            self.settings.smtp_url, self.settings.capture_dir, timeout=self.settings.smtp_timeout,
            ca_file=self.settings.smtp_ca_file,
        )
        deliverer = Deliverer(settings=self.settings, factory=self.factory, transport=transport, signer=self.signer,
                              throttle=self.throttle, failure_hooks=self.delivery_failure_hooks())
        if should_stop is not None:
            deliverer.should_stop = should_stop
        return deliverer

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
