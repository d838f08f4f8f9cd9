"""Provenance: what each artifact came from (records) and walking it back (audit)."""
