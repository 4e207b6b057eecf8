"""The `sendwell demo` mission and its helpers."""
