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

    def make_deliverer(self):  # type: ignore[no-untyped-def]
        from sendwell.delivery.service import Deliverer
        from sendwell.delivery.transport import make_transport

        transport = make_transport(
            self.settings.smtp_url, self.settings.capture_dir, timeout=self.settings.smtp_timeout
        )
        return Deliverer(settings=self.settings, factory=self.factory, transport=transport, signer=self.signer)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
