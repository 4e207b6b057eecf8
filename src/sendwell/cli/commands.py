"""The command groups the entry point registers."""

from __future__ import annotations

from sendwell.cli.core import campaigns, contacts, init, serve, worker
from sendwell.cli.demo import demo
from sendwell.cli.dkim import dkim
from sendwell.cli.feedback import feedback

ALL = [init, contacts, campaigns, serve, worker, demo, dkim, feedback]
