"""The command groups the entry point registers; each context's commands live in their own module."""

from __future__ import annotations

from sendwell.cli.api_tokens import api_tokens
from sendwell.cli.campaigns import campaigns
from sendwell.cli import content as _content  # noqa: F401  (attaches `campaigns lint|preview`)
from sendwell.cli.contacts import contacts
from sendwell.cli.demo import demo
from sendwell.cli.dkim import dkim
from sendwell.cli.feedback import feedback
from sendwell.cli.hygiene import hygiene
from sendwell.cli.report import report
from sendwell.cli.segments import segments
from sendwell.cli.system import init, serve, worker
from sendwell.cli.users import users
from sendwell.cli.webhooks import webhooks

ALL = [init, contacts, segments, campaigns, serve, worker, demo, dkim, feedback, report, api_tokens, webhooks,
       hygiene, users]
