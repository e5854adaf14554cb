"""pytest plugin: emulator fixtures (being written)."""
