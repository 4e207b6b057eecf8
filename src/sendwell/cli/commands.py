"""The command groups of the entry point: each command's name and the module that defines it."""

from __future__ import annotations

# name → "module:attribute". The entry point imports a module only when its command runs
# (sendwell.cli.main.LazyGroup), so every module imports what it uses at its top.
COMMANDS = {
    "init": "sendwell.cli.system:init",
    "migrate": "sendwell.cli.migrate:migrate",
    "health": "sendwell.cli.system:health",
    "contacts": "sendwell.cli.contacts:contacts",
    "segments": "sendwell.cli.segments:segments",
    "campaigns": "sendwell.cli.campaigns:campaigns",
    "serve": "sendwell.cli.system:serve",
    "worker": "sendwell.cli.system:worker",
    "demo": "sendwell.cli.demo:demo",
    "dkim": "sendwell.cli.dkim:dkim",
    "domain": "sendwell.cli.domain:domain",
    "feedback": "sendwell.cli.feedback:feedback",
    "report": "sendwell.cli.report:report",
    "api-tokens": "sendwell.cli.api_tokens:api_tokens",
    "webhooks": "sendwell.cli.webhooks:webhooks",
    "hygiene": "sendwell.cli.hygiene:hygiene",
    "users": "sendwell.cli.users:users",
    "settings": "sendwell.cli.settings_cmd:settings",
    "warmup": "sendwell.cli.warmup:warmup",
    "sequences": "sendwell.cli.sequences:sequences",
    "forms": "sendwell.cli.forms:forms",
}
