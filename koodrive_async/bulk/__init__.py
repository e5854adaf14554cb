"""The library wing for journaled bulk runs (being assembled).

Plan bodies (``_bodies``) are here now; plan files, the journal, the
reconciliation rule and the run-and-resume loop follow. Nothing here is
public yet.
"""
