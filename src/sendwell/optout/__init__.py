"""Opt-outs: signed tokens, the RFC 8058 one-click service, the page's choices, thank-you mail with undo, audit."""
