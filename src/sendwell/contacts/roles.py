"""The default role-address list: local parts of shared mailboxes (SENDWELL_ROLE_ADDRESSES)."""

from __future__ import annotations

# A team's inbox, not a person's consent. Standard library only: config imports it for the
# setting's default.
ROLE_ADDRESSES = ("admin,administrator,billing,contact,enquiries,enquiry,hello,help,hostmaster,info,inquiries,"
                  "inquiry,marketing,noreply,no-reply,office,postmaster,sales,support,team,webmaster")
