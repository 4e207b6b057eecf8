"""Contacts: people, topics and subscriptions, consent records, vocabularies, CSV/XLSX import and export, erasure."""
