"""The last check before a marketing mail is handed to SMTP, serialised with opt-outs.

Batch claiming re-checks eligibility, but a batch claimed before an opt-out would still go
out after the person's POST returned. The deliverer therefore opens a short transaction per
mail around the SMTP hand-off and calls `hold_for_send` first: on PostgreSQL it takes a
share lock on the contact row, which `unsubscribe_contact`'s FOR UPDATE waits for; on SQLite
the transaction is BEGIN IMMEDIATE, so it holds the single write lock. Either way an opt-out
commits entirely before or entirely after the hand-off: no mail leaves after the 200.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from sendwell.db.models import SCOPE_ALL
from sendwell.policy.eligibility import SUPPRESSION_SKIP

# Driver SQL on the deliverer's own connection, not an ORM Session and a statement built per
# mail: that cost ~0.5 ms of CPU per mail (cProfile of a deliverer), a fifth of all its work.
_LOCK_CONTACT = "SELECT id FROM contacts WHERE id = {p} FOR SHARE"  # PostgreSQL only
_SUPPRESSION = "SELECT reason FROM suppressions WHERE email_hash = {p} AND scope = {p} ORDER BY id LIMIT 1"


def hold_for_send(conn: Connection, *, contact_id: int, email_hash: str) -> str | None:
    """Lock the contact against a concurrent opt-out; the skip reason if it must not be mailed.

    Call it inside the transaction that hands the mail to SMTP (see the module docstring).
    """
    p = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_LOCK_CONTACT.format(p=p), (contact_id,))
    row = conn.exec_driver_sql(_SUPPRESSION.format(p=p), (email_hash, SCOPE_ALL)).first()
    if row is None:
        return None
    return SUPPRESSION_SKIP.get(row[0], "suppressed")
