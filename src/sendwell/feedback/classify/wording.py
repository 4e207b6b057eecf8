"""Wording tables: each is one alternation scanned once over a lower-cased diagnosis."""

from __future__ import annotations

import re

# Every table is matched against lower-cased text, and every alternative starts with a literal
# character: the regex engine then skips an alternative on its first character, which keeps a
# table of a hundred phrases about as cheap as one.
STAGE_DATA = re.compile(r">>> data|end\s+of\s+data\s+command|in\s+reply\s+to\s+data")
# The reporting MTA names the command the refusal answered. Only a refusal at RCPT TO is about the
# address itself (RFC 5321 §3.3); qmail-remote writes "does not like recipient" for it, Oracle
# Messaging Server "Remote SMTP server has rejected address".
STAGE_RCPT = re.compile(
    r"rcpt[ _]?to|smtp:rcpt|rcpt\s+command|in\s+reply\s+to\s+rcpt|does not like recipient|has rejected address"
)
# The failure came from a local delivery program (procmail, maildrop, a pipe), not from a mail
# server's answer: Postfix reports such a program as "x-unix" Diagnostic-Code and "Command output:".
LOCAL_PROGRAM = re.compile(r"x-unix;|command output:")

# The receiver refuses the sender (IP, domain, authentication, volume): the address may be fine.
SENDER_FAULT = re.compile(
    r"too many (?:recipients|connections|messages)|rate limit|frequency limit|sending rate"
    r"|blocked ip|spamhaus|spamcop|barracuda|blacklist|black list|blocklist|block list|dnsbl|rbl\b"
    r"|sender rejected|sender address rejected|mismatches client ip|unverif(?:y|i)able sending"
    r"|reverse dns|ptr record|not rfc ?5322 compliant|spf\b|dkim|dmarc|authentication|unauthenticated"
    r"|not authorized to send|client host rejected|reputation|is listed|are listed|been listed"
    r"|currently listed|listed (?:on|by|at)|tss\d\d\b"
    r"|messages from [\d.]+ weren't sent|unwanted messages|invalid ip for sending|ip address .{0,40}block"
    r"|your ip|access denied, banned|relay quota|sending limit"
)
# The receiver refuses the content or applies a policy to this message.
SPAM = re.compile(
    r"spam\b|unsolicited|as ube\b|content rejected|bulk e-?mail filter|virus|malware|phishing"
    r"|blocked by|message rejected|mail rejected|policy|message (?:was )?filtered|blocked\b"
    r"|improper use of 8-bit|8-bit data|not accepted for policy reasons|junk"
    # German, French, Spanish, Russian, Chinese: spam / refused as spam
    r"|als spam|courrier ind[ée]sirable|correo no deseado|спам|垃圾邮件"
)
MAILBOX_FULL = re.compile(
    r"mailbox (?:is )?full|mailbox full|over ?quota|quota exceeded|exceeds? (?:the )?(?:allowed|storage)"
    r"|user mailbox exceeds|insufficient (?:system )?storage|disk quota|mailbox size limit|out of storage"
    r"|postfach (?:ist )?voll|speicherplatz|bo[iî]te (?:aux lettres |de r[ée]ception )?(?:est )?pleine"
    r"|buz[óo]n (?:est[áa] )?lleno|cuota excedida|caixa (?:postal )?(?:est[áa] )?cheia|ящик переполнен"
    r"|邮箱已满|邮箱空间已满|空间不足|容量已满|信箱已滿|容量超過|メールボックスがいっぱい"
)
TOO_LARGE = re.compile(
    r"message too (?:large|big)|message size exceeds|too large|message length exceeds|size limit"
)
LOOP = re.compile(r"mail loop|loop (?:alert|detected)|duplicated message-id|too many hops|routing loop")
EXPIRED = re.compile(
    r"retry timeout exceeded|retry time exceeded|could not deliver for the last|giving up"
    r"|cannot send message for|message expired|timed out|delivery time expired|queue too long"
    r"|been in the queue too long"
)
HOST_UNKNOWN = re.compile(
    r"host or domain name not found|host not found|domain not found|no such domain"
    r"|illegal host/domain|unrouteable (?:address|domain)|unroutable (?:address|domain)|name service error"
    r"|domain (?:name )?(?:does not|doesn't) exist|no mx|null mx|domaine inconnu|域名不存在"
    r"|accepts no mail|does not accept mail"
)
# A name-server failure is not an answer that the domain does not exist.
DNS_TEMPORARY = re.compile(
    r"try again|malformed|unexpected name server reply|server failure|servfail|timeout|temporar"
)
# The mailbox exists but is suspended, frozen or disabled: it may come back (sisimai "suspend").
DISABLED = re.compile(
    r"mailbox disabled|account (?:has been |is )?disabled|account (?:is )?inactive|is inactive|is disabled"
    r"|disabled or discontinued|suspended|frozen|deactivated|temporarily (?:unavailable|locked)"
    r"|receiving mail at a rate|account (?:is )?locked|blocked account|account (?:is )?(?:bloqu|gesperrt)"
    r"|compte (?:du destinataire )?(?:est )?bloqu|recipient account is blocked|冻结|停用"
)
MOVED = re.compile(r"has moved|mailbox moved|no longer (?:valid|active|available|in use|with)")
# Greylisting: a routine first-contact deferral under a 4.7.x status, not a refusal of the sender.
GREYLIST = re.compile(r"grey ?list|gray ?list")
# Relaying refused: the server does not take mail for that domain from us (a setup problem).
RELAY = re.compile(r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)|not permitted to relay|unable to relay")
# Unambiguous "this mailbox does not exist" wording, in the languages our users' buyers write.
USER_UNKNOWN_STRONG = re.compile(
    r"no such (?:user|mailbox|recipient|address|account)|not listed in (?:the )?(?:domino )?directory"
    r"|recipient name is not recognized|invalid final delivery userid|no valid recipients"
    r"|invalid (?:user|recipient|mailbox|e-?mail) address|user (?:does not|doesn't) exist"
    r"|mailbox (?:does not|doesn't) exist|address (?:does not|doesn't) exist|recipient (?:does not|doesn't) exist"
    r"|account (?:that you tried to reach )?(?:does not|doesn't) exist|user (?:does not|doesn't) exist"
    r"|unknown recipient|unknown or invalid|recipient address rejected: (?:user unknown|access denied)"
    r"|mailbox (?:not found|unavailable)|mailbox name not allowed|user not found|recipient unknown"
    r"|account (?:not found|unknown)|bad destination (?:mailbox|system)|unknown local part|no mailbox here"
    # German
    r"|benutzer unbekannt|unbekannte[rn]? (?:benutzer|empf[äa]nger)|empf[äa]nger unbekannt|existiert nicht"
    r"|ung[üu]ltige empf[äa]nger"
    # French
    r"|utilisateur inconnu|destinataire inconnu|adresse inconnue|n'existe pas|destinataire invalide"
    r"|adresse (?:destinataire )?invalide"
    # Spanish, Portuguese
    r"|usuario desconocido|destinatario desconocido|no existe|usu[áa]rio desconhecido|utilizador desconhecido"
    r"|destinat[áa]rio desconhecido|n[ãa]o existe|conta inexistente"
    # Russian
    r"|нет такого пользователя|пользователь не найден|пользователь не существует|адрес не существует"
    r"|ящик не существует|несуществующ|неизвестный (?:адрес|получатель|пользователь)"
    # Chinese (simplified and traditional), Japanese
    r"|用户不存在|收件人不存在|邮箱不存在|帐户不存在|账户不存在|账号不存在|帐号不存在|地址不存在|用戶不存在"
    r"|收件人地址不存在|信箱不存在|帳號不存在|该用户不存在|無効なアドレス|存在しない|宛先不明"
    r"|ユーザーが見つかりません|ユーザが見つかりません|そのようなユーザーはいません"
)
# Replies a provider documents as "this address does not exist" whatever the SMTP stage. Yahoo
# answers unknown users after DATA with "554 delivery error: dd This user doesn't have a yahoo.com
# account" and its help page (SLN3444) says the user ID does not exist and not to retry. The
# sentence alone, without Yahoo's "delivery error: dd" prefix, is not in USER_UNKNOWN_STRONG:
# other systems print it with no code and no SMTP stage, also to refuse a sender the recipient
# filters, so there it is not enough to suppress an address.
DOCUMENTED_DEAD = re.compile(r"delivery error: dd this user doesn't have an? ")
# Bare "user unknown": spam appliances also answer this to reject content (sisimai's "filtered"),
# so it needs corroboration before it may suppress a contact.
USER_UNKNOWN_WEAK = re.compile(r"user unknown|unknown user|recipient not found|unknown address|invalid recipient")
# The same words tied to the address by the MTA's own syntax (Sendmail "<a@b>... User unknown",
# "<a@b>: user unknown", "unknown user a@b"): the reply is about that mailbox, not the content.
ADDRESS = "\x00"  # what judge() puts in place of each address before matching words
USER_UNKNOWN_ADDRESSED = re.compile(
    r"\x00>?(?:\.\.\.|:)?[ \t]*(?:user unknown|unknown user|unknown recipient)"
    r"|(?:user unknown|unknown user)[: \t]+<?\x00"
)
DELAY_NOTICE = re.compile(r"has not yet been delivered|delivery (?:is )?delayed|will (?:continue|retry)")
