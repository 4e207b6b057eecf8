"""RFC 3834 automatic responses (vacation notices) and challenge-response mail."""

from __future__ import annotations

import re
from email.message import Message

from sendwell.feedback.classify.headers import subject_of

AUTOREPLY_SUBJECT_RE = re.compile(
    r"out of (?:the )?office|auto(?:matic)?[ -]?(?:reply|response|responder|antwort)|vacation"
    r"|\baway\b|abwesen|absence|thank you for your (?:e-?mail|message)"
    # German, French, Spanish, Italian, Chinese subjects of vacation notices
    r"|automatische antwort|r[ée]ponse automatique|\babsente?\b|respuesta autom[áa]tica"
    r"|fuera de (?:la )?oficina|risposta automatica|fuori sede|自动回复|自動回覆|自动答复|休假|不在办公室"
    # Portuguese, Russian, Japanese
    r"|resposta autom[áa]tica|fora do escrit[óo]rio|aus[êe]ncia|автоответ|автоматический ответ"
    r"|нет на месте|в отпуске|自動応答|自動返信|不在通知|休暇"
    # Help-desk acknowledgements: a ticket system answering on its own
    r"|\bticket\b|\[#\d+\]|case (?:number|#)|we have received your (?:request|message|e-?mail)",
    re.I,
)
AUTOREPLY_BODY_RE = re.compile(
    r"out of (?:the )?office|on vacation|on holiday|currently away|i am (?:currently )?away"
    r"|limited access to (?:my )?e-?mail|(?:reply|respond|get back to you) (?:as soon as|upon my return)"
    r"|thank you for (?:you|your) e-?mail"
    r"|nicht im b[üu]ro|au(?:ß|ss)er haus|\babwesend\b|im urlaub|absente? du bureau|je suis absente?"
    r"|en cong[ée]s?\b|de retour le|fuera de la oficina|estar[ée] fuera|de vacaciones|\bausente\b"
    r"|休假|不在办公室|不在辦公室|外出|返回办公室|回到办公室"
    r"|fora do escrit[óo]rio|de f[ée]rias|estarei ausente|в отпуске|нет на месте|не в офисе"
    r"|不在にしております|休暇中|出張中|戻り次第"
    r"|(?:ticket|request|case) (?:number|id|#)|has been (?:received|logged|created)|we (?:will|'ll) respond",
    re.I,
)
CHALLENGE_RE = re.compile(
    r"allowed list|whitelist|approved senders|verify (?:that )?you are|verification"
    r"|confirm (?:that )?you are a (?:real )?(?:person|human)|challenge",
    re.I,
)


def is_auto_reply(msg: Message, body: str) -> bool:
    # RFC 3834 §5: Auto-Submitted other than "no" marks automatic mail; auto-replied is a response.
    """Whether a message is an automatic response (RFC 3834 headers, or vacation / ticket wording)."""
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto.startswith("auto-replied"):
        return True
    if any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder")):
        return True
    subject = subject_of(msg)
    precedence = str(msg.get("Precedence", "")).strip().lower()
    # Older autoresponders only set Precedence: bulk/junk/auto_reply (RFC 3834 §3.1.8 notes it).
    if precedence in ("bulk", "junk", "auto_reply", "list"):
        return bool(AUTOREPLY_SUBJECT_RE.search(subject) or AUTOREPLY_BODY_RE.search(body))
    return bool(AUTOREPLY_SUBJECT_RE.search(subject) and AUTOREPLY_BODY_RE.search(body))
