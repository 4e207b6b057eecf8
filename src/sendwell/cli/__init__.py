"""The `sendwell` console adapter (Click): one module per command group, loaded when the command runs."""
