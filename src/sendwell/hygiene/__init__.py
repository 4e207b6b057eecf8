"""List hygiene: the scheduled pass (sunset flow, address cleaning, soft-bounce streaks, pauses, consent expiry)."""
