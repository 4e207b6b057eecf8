"""Daily charts' data: the figures per day from insight, labelled and coloured, for admin.js to draw with uPlot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Each daily figure: its label (an admin catalog msgid), colour and axis. Mails sent and the
# people who opened or clicked are hundreds a day, opt-outs a handful: each group has its own axis.
SERIES = {
    "delivered": ("Sent", "#4a6fa5", "mails"),
    "opened": ("Opens by people", "#2e9e6b", "mails"),
    "clicked": ("Clicks by people", "#e08a00", "mails"),
    "unsubscribed": ("Unsubscribes", "#d9534f", "optouts"),
    "complained": ("Complaints", "#8e44ad", "optouts"),
}
AXES = {"mails": "Mails and people", "optouts": "Opt-outs"}


def daily_chart(days: list[dict[str, Any]], kinds: tuple[str, ...], _: Callable[..., str]) -> dict[str, Any]:
    """The JSON a daily chart is drawn from: days, one series per figure, the axes they use."""
    scales = list(dict.fromkeys(SERIES[kind][2] for kind in kinds))
    return {
        "days": [d["day"] for d in days],
        "x_label": _("Day"),  # uPlot's own default is the English "Time"
        "series": [{"key": kind, "label": _(SERIES[kind][0]), "color": SERIES[kind][1], "scale": SERIES[kind][2],
                    "values": [d[kind] for d in days]} for kind in kinds],
        "axes": [{"scale": scale, "label": _(AXES[scale]), "side": 3 if i == 0 else 1} for i, scale in enumerate(scales)],
    }
