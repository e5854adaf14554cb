"""KooDrive emulator (being written)."""
