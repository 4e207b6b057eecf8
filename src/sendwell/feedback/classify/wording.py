"""Wording tables: each is one alternation scanned once over a lower-cased diagnosis."""

from __future__ import annotations

import re

STAGE_DATA = re.compile(r">>> DATA|end\s+of\s+DATA\s+command|in\s+reply\s+to\s+DATA", re.I)
STAGE_RCPT = re.compile(r"RCPT[ _]?TO|SMTP:RCPT|RCPT\s+command|in\s+reply\s+to\s+RCPT", re.I)

# Wording tables. Each is one alternation scanned once over the lower-cased diagnosis.
SENDER_FAULT = re.compile(
    r"too many (?:recipients|connections|messages)|rate limit|frequency limit|sending rate"
    r"|blocked ip|spamhaus|blacklist|black list|blocklist|dnsbl|\brbl\b|sender rejected"
    r"|sender address rejected|mismatches client ip|unverif(?:y|i)able sending|reverse dns"
    r"|ptr record|not rfc ?5322 compliant|spf (?:check )?fail|dkim|dmarc|authentication"
    r"|not authorized to send|client host rejected"
)
SPAM = re.compile(
    r"\bspam\b|unsolicited|\bube\b|content rejected|bulk e-?mail filter|virus|malware|phishing"
    r"|blocked by|message rejected|policy"
)
MAILBOX_FULL = re.compile(
    r"mailbox (?:is )?full|mailbox full|over ?quota|quota exceeded|exceeds? (?:the )?(?:allowed|storage)"
    r"|user mailbox exceeds|insufficient (?:system )?storage|disk quota|mailbox size limit"
    r"|postfach (?:ist )?voll|speicherplatz|bo[iî]te (?:aux lettres |de r[ée]ception )?(?:est )?pleine"
    r"|buz[óo]n (?:est[áa] )?lleno|cuota excedida|邮箱已满|邮箱空间已满|空间不足|容量已满|信箱已滿"
)
TOO_LARGE = re.compile(r"message too (?:large|big)|message size exceeds|too large")
LOOP = re.compile(r"mail loop|loop (?:alert|detected)|duplicated message-id|too many hops")
EXPIRED = re.compile(
    r"retry timeout exceeded|retry time exceeded|could not deliver for the last|giving up"
    r"|cannot send message for|message expired|timed out|delivery time expired|queue too long"
)
HOST_UNKNOWN = re.compile(
    r"host or domain name not found|host not found|domain not found|no such domain"
    r"|illegal host/domain|invalid domain|unrouteable (?:address|domain)|name service error"
    r"|domain (?:name )?(?:does not|doesn't) exist|no mx|domaine inconnu|域名不存在"
)
DISABLED = re.compile(
    r"mailbox disabled|account (?:has been )?disabled|account (?:is )?inactive|has moved"
)
# Unambiguous "this mailbox does not exist" wording.
USER_UNKNOWN_STRONG = re.compile(
    r"no such (?:user|mailbox|recipient)|not listed in (?:the )?(?:domino )?directory"
    r"|recipient name is not recognized|invalid final delivery userid|no valid recipients"
    r"|invalid (?:user|recipient|mailbox) address|user (?:does not|doesn't) exist"
    r"|mailbox (?:does not|doesn't) exist|address does not exist|unknown recipient"
    r"|(?:does not|doesn't) have an? [\w.-]+ account"
    r"|benutzer unbekannt|unbekannte[rn]? (?:benutzer|empf[äa]nger)|empf[äa]nger unbekannt|existiert nicht"
    r"|utilisateur inconnu|destinataire inconnu|adresse inconnue|n'existe pas|usuario desconocido"
    r"|destinatario desconocido|no existe|用户不存在|收件人不存在|邮箱不存在|帐户不存在|账户不存在|账号不存在"
    r"|地址不存在|用戶不存在"
)
# Bare "user unknown": spam appliances also answer this to reject content (sisimai's "filtered"),
# so it needs corroboration before it may suppress a contact.
USER_UNKNOWN_WEAK = re.compile(r"user unknown|unknown user|recipient not found|unknown address|invalid recipient")
DELAY_NOTICE = re.compile(r"has not yet been delivered|delivery (?:is )?delayed|will (?:continue|retry)")
