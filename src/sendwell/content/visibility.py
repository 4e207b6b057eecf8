"""Is a link visible to a person? Reads the final, CSS-inlined HTML the way a mail client shows it.

css-inline has already parsed the document as a browser would (html5ever) and moved every
stylesheet rule into `style` attributes, so inline styles and the element tree are all that
decide here. A link counts as hidden when an ancestor (or the link) hides it: `display:none`,
`visibility:hidden`, `opacity:0`, `mso-hide:all` (Outlook), a height, width or line height of 2 px or less with
`overflow:hidden`, off-screen positioning (`left:-9999px`, `text-indent`, `translate`), a clip
to nothing (`clip:rect(…)` of no area, `clip-path: inset(50%)`, `circle(0)`), a scale of zero,
a font smaller than 6 px, a colour too close to the background (WCAG contrast below 1.5), a
transparent colour, a `hidden` attribute, or a container that does not render its content
(`<template>`, `<noscript>`, `<textarea>`, …).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

MIN_FONT_PX = 6.0
MIN_CONTRAST = 1.5
OFFSCREEN_PX = -500.0
# Containers whose content a mail client does not show as a clickable link.
HIDING_CONTAINERS = frozenset({
    "head", "title", "script", "style", "template", "noscript", "textarea", "select", "option",
    "iframe", "object", "noembed", "noframes", "xmp", "plaintext", "svg", "math", "datalist",
})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    _style: dict[str, str] | None = None

    @property
    def style(self) -> dict[str, str]:
        if self._style is None:
            self._style = parse_style(self.attrs.get("style", ""))
        return self._style

    def ancestry(self) -> list[Node]:
        """Root first, this node last."""
        chain: list[Node] = []
        node: Node | None = self
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain[::-1]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.nodes: list[Node] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: (v or "") for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        self.nodes.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: (v or "") for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        self.nodes.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].text.append(data)


def parse_html(html: str) -> list[Node]:
    """Every element of the document, in document order."""
    tree = _Tree()
    tree.feed(html)
    tree.close()
    return tree.nodes


def parse_style(style: str) -> dict[str, str]:
    """`a: b; c: d !important` → {"a": "b", "c": "d"}; an !important declaration is not overridden."""
    out: dict[str, str] = {}
    important: set[str] = set()
    for decl in style.split(";"):
        name, sep, value = decl.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip().lower()
        is_important = value.endswith("!important")
        value = value.removesuffix("!important").strip()
        if name in important and not is_important:
            continue
        out[name] = value
        if is_important:
            important.add(name)
    return out


# ---- colours -----------------------------------------------------------------------
_NAMED = {
    "white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0), "green": (0, 128, 0),
    "blue": (0, 0, 255), "gray": (128, 128, 128), "grey": (128, 128, 128), "silver": (192, 192, 192),
    "yellow": (255, 255, 0), "orange": (255, 165, 0), "navy": (0, 0, 128), "maroon": (128, 0, 0),
    "purple": (128, 0, 128), "teal": (0, 128, 128), "olive": (128, 128, 0), "lime": (0, 255, 0),
    "aqua": (0, 255, 255), "cyan": (0, 255, 255), "fuchsia": (255, 0, 255), "magenta": (255, 0, 255),
    "whitesmoke": (245, 245, 245), "snow": (255, 250, 250), "ivory": (255, 255, 240),
    "ghostwhite": (248, 248, 255), "floralwhite": (255, 250, 240), "linen": (250, 240, 230),
    "gainsboro": (220, 220, 220), "lightgray": (211, 211, 211), "lightgrey": (211, 211, 211),
    "darkgray": (169, 169, 169), "darkgrey": (169, 169, 169), "dimgray": (105, 105, 105),
    "dimgrey": (105, 105, 105), "beige": (245, 245, 220), "azure": (240, 255, 255),
    "honeydew": (240, 255, 240), "mintcream": (245, 255, 250), "aliceblue": (240, 248, 255),
    "seashell": (255, 245, 238), "oldlace": (253, 245, 230), "lavender": (230, 230, 250),
}
_COLOUR_TOKEN = re.compile(r"#[0-9a-f]{3,8}\b|rgba?\([^)]*\)|\b[a-z]+\b")
Colour = tuple[float, float, float, float]  # r, g, b in 0–255, alpha in 0–1


def parse_colour(value: str) -> Colour | None:
    """A CSS colour (hex, rgb(), rgba(), a common name, transparent), or None if unknown."""
    value = value.strip().lower()
    if value == "transparent":
        return (0, 0, 0, 0.0)
    if value in _NAMED:
        return (*_NAMED[value], 1.0)
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        if len(digits) not in (6, 8) or not all(c in "0123456789abcdef" for c in digits):
            return None
        alpha = int(digits[6:8], 16) / 255 if len(digits) == 8 else 1.0
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), alpha)
    match = re.fullmatch(r"rgba?\(([^)]*)\)", value)
    if match:
        parts = [p for p in re.split(r"[\s,/]+", match.group(1).strip()) if p]
        try:
            rgb = [float(p[:-1]) * 2.55 if p.endswith("%") else float(p) for p in parts[:3]]
            alpha = 1.0
            if len(parts) > 3:
                alpha = float(parts[3][:-1]) / 100 if parts[3].endswith("%") else float(parts[3])
        except ValueError:
            return None
        if len(rgb) == 3:
            return (rgb[0], rgb[1], rgb[2], alpha)
    return None


def _first_colour(value: str) -> Colour | None:
    """The colour inside a `background:` shorthand, if any."""
    for token in _COLOUR_TOKEN.findall(value.lower()):
        colour = parse_colour(token)
        if colour is not None:
            return colour
    return None


def _luminance(c: Colour) -> float:
    def channel(v: float) -> float:
        v = max(0.0, min(255.0, v)) / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2])


def contrast(a: Colour, b: Colour) -> float:
    """WCAG 2 contrast ratio, 1 (identical) to 21 (black on white)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


# ---- lengths -----------------------------------------------------------------------
_KEYWORD_PX = {"xx-small": 9, "x-small": 10, "small": 13, "medium": 16, "large": 18, "x-large": 24,
               "xx-large": 32, "xxx-large": 48}
_FONT_TAG_PX = {"1": 10, "2": 13, "3": 16, "4": 18, "5": 24, "6": 32, "7": 48}
_LENGTH = re.compile(r"^(-?[\d.]+)(px|pt|em|rem|%|ex|ch|vw|vh|cm|mm|in|pc)?$")


def length_px(value: str, parent_px: float) -> float | None:
    """A CSS length in px, relative units against the parent's font size; None if not a length."""
    value = value.strip().lower()
    if value in _KEYWORD_PX:
        return float(_KEYWORD_PX[value])
    if value == "smaller":
        return parent_px / 1.2
    if value == "larger":
        return parent_px * 1.2
    match = _LENGTH.match(value)
    if not match:
        return None
    number = float(match.group(1))
    unit = match.group(2) or "px"
    factor = {"px": 1.0, "pt": 4 / 3, "em": parent_px, "rem": 16.0, "%": parent_px / 100, "ex": parent_px / 2,
              "ch": parent_px / 2, "vw": 6.0, "vh": 6.0, "cm": 37.8, "mm": 3.78, "in": 96.0, "pc": 16.0}[unit]
    return number * factor


def _is_tiny(value: str | None) -> bool:
    """0–2 px: a box that shows nothing once its overflow is clipped."""
    if value is None:
        return False
    px = length_px(value, 16.0)
    return px is not None and px <= 2.0


def _clips(style: dict[str, str]) -> bool:
    return style.get("overflow", style.get("overflow-y", style.get("overflow-x", ""))) in ("hidden", "clip")


def _clipped_away(style: dict[str, str]) -> str | None:
    """A `clip` or `clip-path` that leaves nothing (or at most 2 px) to see."""
    rect = re.fullmatch(r"rect\(([^)]*)\)", style.get("clip", "").strip())
    if rect:
        sides = [length_px(v, 16.0) for v in re.split(r"[\s,]+", rect.group(1).strip())]
        if len(sides) == 4 and None not in sides:
            top, right, bottom, left = sides  # type: ignore[misc]
            if bottom - top <= 2.0 or right - left <= 2.0:  # type: ignore[operator]
                return f"clip:{style['clip']}"
    path = style.get("clip-path", style.get("-webkit-clip-path", "")).strip()
    shape = re.fullmatch(r"(inset|circle|ellipse|polygon)\((.*)\)", path)
    if not shape:
        return None
    kind, args = shape.group(1), shape.group(2).split(" at ")[0].split(" round ")[0]
    values = [v for v in re.split(r"[\s,]+", args.strip()) if v]
    if kind == "inset":
        # Two opposite insets of 50 % or more meet: nothing is left.
        percents = [float(v[:-1]) for v in values if re.fullmatch(r"[\d.]+%", v)]
        if percents and (max(percents) >= 50 or (len(values) == 1 and percents[0] >= 50)):
            return f"clip-path:{path}"
    elif kind in ("circle", "ellipse"):
        radii = [length_px(v, 16.0) for v in values]
        if radii and any(r is not None and r <= 1.0 for r in radii):
            return f"clip-path:{path}"
    elif len({v for v in re.split(r"\s*,\s*", args.strip())}) < 3:  # a polygon of fewer than 3 distinct points
        return f"clip-path:{path}"
    return None


# ---- the verdict -------------------------------------------------------------------
def hidden_reason(node: Node) -> str | None:
    """Why a person would not see this element, or None if it is visible."""
    chain = node.ancestry()
    font_px = 16.0
    colour: Colour = (0, 0, 0, 1.0)
    background: Colour = (255, 255, 255, 1.0)  # mail clients render on white by default
    visibility = "visible"
    opacity = 1.0
    for el in chain:
        if el.tag in HIDING_CONTAINERS:
            return f"inside <{el.tag}>, which is not displayed"
        if "hidden" in el.attrs:
            return f"<{el.tag} hidden>"
        st = el.style
        if st.get("display") == "none":
            return f"display:none on <{el.tag}>"
        if st.get("mso-hide") == "all":
            return f"mso-hide:all on <{el.tag}> (hidden in Outlook)"
        visibility = st.get("visibility", visibility)
        try:
            opacity *= float(st.get("opacity", "1").rstrip("%")) / (100 if st.get("opacity", "").endswith("%") else 1)
        except ValueError:
            pass
        if _clips(st) and any(_is_tiny(st.get(p)) for p in ("height", "max-height", "width", "max-width",
                                                              "line-height")):
            return f"zero size with overflow:hidden on <{el.tag}>"
        if st.get("position") in ("absolute", "fixed", "relative"):
            for side in ("left", "top", "right", "bottom", "margin-left", "margin-top"):
                px = length_px(st.get(side, ""), font_px)
                if px is not None and px <= OFFSCREEN_PX:
                    return f"positioned off-screen ({side}:{st[side]}) on <{el.tag}>"
        indent = length_px(st.get("text-indent", ""), font_px)
        if indent is not None and indent <= OFFSCREEN_PX:
            return f"text-indent:{st['text-indent']} on <{el.tag}>"
        if margin := [side for side in ("margin-left", "margin-top")
                      if (px := length_px(st.get(side, ""), font_px)) is not None and px <= OFFSCREEN_PX]:
            return f"pushed off-screen ({margin[0]}:{st[margin[0]]}) on <{el.tag}>"
        transform = st.get("transform", "")
        if re.search(r"scale(?:[xyz]|3d)?\(\s*0*(\.0*)?\s*[,)]", transform) or re.fullmatch(r"0+(\.0*)?|\.0+", st.get("scale", "1")):
            return f"a scale of zero on <{el.tag}>"
        for offset in re.findall(r"translate(?:[xy]|3d)?\(\s*([^,)\s]+)", transform):
            px = length_px(offset, font_px)
            if px is not None and px <= OFFSCREEN_PX:
                return f"transform:translate({offset}) off-screen on <{el.tag}>"
        if clipped := _clipped_away(st):
            return f"{clipped} on <{el.tag}>"
        if el.tag == "font" and el.attrs.get("size") in _FONT_TAG_PX:
            font_px = float(_FONT_TAG_PX[el.attrs["size"]])
        if "font-size" in st:
            px = length_px(st["font-size"], font_px)
            if px is not None:
                font_px = px
        if "font" in st:  # shorthand: "0/0 a" or "12px Arial"
            first = st["font"].split()[0].split("/")[0] if st["font"].split() else ""
            px = length_px(first, font_px)
            if px is not None:
                font_px = px
        if el.tag == "font" and el.attrs.get("color"):
            colour = parse_colour(el.attrs["color"]) or colour
        if "color" in st:
            colour = parse_colour(st["color"]) or colour
        bg = None
        if "background-color" in st:
            bg = parse_colour(st["background-color"])
        elif "background" in st:
            bg = _first_colour(st["background"])
        if bg is None and el.attrs.get("bgcolor"):
            bg = parse_colour(el.attrs["bgcolor"])
        if bg is not None and bg[3] >= 0.5:
            background = bg
    if visibility in ("hidden", "collapse"):
        return f"visibility:{visibility}"
    if opacity <= 0.1:
        return f"opacity {opacity:g}"
    if font_px < MIN_FONT_PX:
        return f"font size {font_px:g}px (below {MIN_FONT_PX:g}px)"
    if colour[3] <= 0.1:
        return "transparent text colour"
    ratio = contrast(colour, background)
    if ratio < MIN_CONTRAST:
        return f"text colour too close to the background (contrast {ratio:.2f}:1)"
    return None


def visible_text(node: Node) -> str:
    """The text of an element that is not itself hidden by a descendant's own style."""
    parts = list(node.text)
    for child in node.children:
        st = child.style
        if st.get("display") == "none" or st.get("visibility") in ("hidden", "collapse") \
                or child.tag in HIDING_CONTAINERS or "hidden" in child.attrs \
                or (length_px(st.get("font-size", "16px"), 16.0) or 16.0) < MIN_FONT_PX:
            continue
        parts.append(visible_text(child))
        if child.tag == "img" and child.attrs.get("alt"):
            parts.append(child.attrs["alt"])
    return " ".join(p.strip() for p in parts if p.strip())


def link_visibility(html: str, url: str) -> tuple[int, list[str]]:
    """(visible links to `url`, reasons why the others are hidden)."""
    visible, reasons = 0, []
    for node in parse_html(html):
        if node.tag != "a" or node.attrs.get("href", "").strip() != url:
            continue
        reason = hidden_reason(node)
        if reason is None and not visible_text(node):
            reason = "the link has no visible text"
        if reason is None:
            visible += 1
        else:
            reasons.append(reason)
    return visible, reasons


def footer_hidden_reason(html: str) -> str | None:
    """Why the system footer (identity, postal address, links) or one of its lines is hidden; None if shown."""
    for node in parse_html(html):
        if "sendwell-footer" not in node.attrs.get("class", "").split():
            continue
        for part in [node, *(n for n in node.children if n.tag == "p")]:
            reason = hidden_reason(part)
            if reason is None and not visible_text(part):
                reason = "it has no visible text"
            if reason:
                return reason
    return None
