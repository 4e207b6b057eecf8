"""The render budget: how much output, string building, looping and time one template render may take."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from functools import wraps
from itertools import islice
from string import Formatter
from typing import Any

from jinja2.exceptions import SecurityError
from markupsafe import Markup, escape, soft_str

# Constants, not settings: a campaign that needs more is not an email any more.
MAX_HTML_CHARS = 1_000_000  # one render of the HTML body (before the footer)
MAX_TEXT_CHARS = 1_000_000  # one render of the text body or the subject
MAX_WORK_CHARS = 16_000_000  # all strings the template's own operations build in one render
MAX_LOOP_ITERATIONS = 200_000  # all {% for %} iterations and calls in one render
MAX_RENDER_SECONDS = 2.0  # wall time of one render

# printf-style conversion specs: flags, width, precision ('*' takes them from the arguments).
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
# str.format specs: [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[a-zA-Z%]?$", re.S)


class BudgetExceeded(SecurityError):
    """A template render went over its budget; the message names the limit."""


class Budget:
    """What one render has used so far."""

    __slots__ = ("limit", "work", "steps", "deadline")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.work = 0
        self.steps = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def charge(self, chars: int) -> None:
        if chars > self.limit:
            raise BudgetExceeded(f"template tried to build a string longer than the render budget of "
                                 f"{self.limit:,} characters")
        self.work += chars
        if self.work > MAX_WORK_CHARS:
            raise BudgetExceeded(f"template built more than the render budget of {MAX_WORK_CHARS:,} characters "
                                 "in one render")

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_LOOP_ITERATIONS:
            raise BudgetExceeded(f"template looped more than the render budget of {MAX_LOOP_ITERATIONS:,} "
                                 "iterations in one render")
        if not self.steps & 255 and time.monotonic() > self.deadline:
            self.over_time()

    def over_time(self) -> None:
        raise BudgetExceeded(f"template rendered longer than the render budget of {MAX_RENDER_SECONDS:g} s")


_current: ContextVar[Budget | None] = ContextVar("render_budget", default=None)


def _budget(limit: int = MAX_TEXT_CHARS) -> Budget:
    # Outside a render (the compiler folding constants) each operation gets a budget of its own.
    return _current.get() or Budget(limit)


def charge(chars: int) -> None:
    """Count a string the template built; refuse if it or the render's total is over budget."""
    _budget().charge(chars)


def step() -> None:
    """Count one loop iteration or call; refuse past the iteration or time budget."""
    budget = _current.get()
    if budget is not None:
        budget.step()


def weight(value: Any, depth: int = 0) -> int:
    """About how many characters a value prints as: a list of a million references is big."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)) and depth < 4:
        return len(value) * 2 + sum(weight(item, depth + 1) for item in value)
    if isinstance(value, dict) and depth < 4:
        return sum(weight(k, depth + 1) + weight(v, depth + 1) + 4 for k, v in value.items())
    return len(value) * 8 if isinstance(value, (list, tuple, dict)) else 8


def check_width(width: int | None) -> None:
    """A padding width or precision larger than the budget would build a string larger than it."""
    if width is not None and width > _budget().limit:
        _budget().charge(width)


def concat(parts: list[str]) -> str:
    """`"".join` of a buffer (a macro, a block, {% set %}) that refuses a result over the budget."""
    budget = _budget()
    budget.charge(sum(map(len, parts)))
    if time.monotonic() > budget.deadline:
        budget.over_time()
    return "".join(parts)


def render(limit: int, stream: Iterable[str]) -> str:
    """Join one template's render stream inside a fresh budget of `limit` characters."""
    budget = Budget(limit)
    token = _current.set(budget)
    try:
        # Read in small batches and stop as soon as it is too long (most mails: one batch).
        stream, pieces, size, full = iter(stream), [], 0, True
        while full:
            batch = list(islice(stream, 64))
            full = len(batch) == 64
            size += sum(map(len, batch))
            if size > limit:
                budget.charge(size)
            pieces += batch
        return "".join(pieces)
    finally:
        _current.reset(token)


def markup_join(seq: Iterable[Any]) -> str:
    """jinja2.runtime.markup_join (`~` with autoescape), sized before joining."""
    items = [soft_str(item) for item in _bounded(seq)]
    if any(hasattr(item, "__html__") for item in items):
        items = [escape(item) for item in items]
        return Markup(concat(items))
    return concat(items)


def str_join(seq: Iterable[Any]) -> str:
    """jinja2.runtime.str_join (`~`), sized before joining."""
    return concat([str(item) for item in _bounded(seq)])


def _bounded(seq: Iterable[Any]) -> list[Any]:
    items = list(seq)
    size = sum(len(item) for item in items if isinstance(item, str))
    if size > _budget().limit:
        _budget().charge(size)
    return items


def checked_escape(value: Any) -> Markup:
    """markupsafe.escape, counted: escaping can make a string six times longer."""
    rv = escape(value)
    if len(rv) > 4096:
        charge(len(rv))
    return rv


def loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every {% for %} iterates through this: each iteration counts against the budget."""
    budget = _current.get()
    for item in iterable:
        if budget is not None:
            budget.step()
        yield item


def check_percent(fmt: str, args: Any) -> None:
    """Refuse `'%100000000s' % x` before Python builds it."""
    values = args if isinstance(args, tuple) else (args,)
    stars = iter(v for v in values if isinstance(v, int))
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for number in (width, precision):
            if number == "*":
                check_width(next(stars, 0))
            elif number:
                check_width(int(number))


def check_format_spec(spec: str) -> None:
    """Refuse `'{:>99999999}'.format(x)` before Python builds it."""
    match = _FORMAT_SPEC.match(spec)
    if match is None:
        return  # not a standard spec: the value's own __format__ decides, on a bounded value
    for number in match.groups():
        if number:
            check_width(int(number))


def check_str_method(name: str, text: str, args: tuple[Any, ...]) -> None:
    """Size a str method's result before calling it, for the methods whose result can outgrow the input."""
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        check_width(args[0])
    elif name == "expandtabs" and args and isinstance(args[0], int):
        check_width(len(text) + text.count("\t") * args[0])
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = args[2] if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0 else None
        hits = text.count(args[0]) if args[0] else len(text) + 1
        hits = min(hits, count) if count is not None else hits
        check_width(len(text) + hits * max(0, len(args[1]) - len(args[0])))
    elif name == "join" and args and isinstance(args[0], (list, tuple)):
        items = args[0]
        check_width(sum(len(i) for i in items if isinstance(i, str)) + len(text) * max(0, len(items) - 1))


def checked_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A Jinja filter wrapped so that arguments that amplify are refused and results are counted."""

    @wraps(func)  # keeps jinja_pass_arg, so Jinja still passes the environment or context
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
        values = args[skip:]
        if values and name == "join" and not isinstance(values[0], (str, list, tuple)):
            # Size the items before joining them: an iterator is read once, here.
            args = (*args[:skip], list(values[0]), *values[1:])
            values = args[skip:]
        if values:
            _precheck_filter(name, values, kwargs)
        rv = func(*args, **kwargs)
        if isinstance(rv, (str, list, tuple)) and len(rv) > 64:
            charge(len(rv))
        step()
        return rv

    return wrapper


def _precheck_filter(name: str, values: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    value, rest = values[0], list(values[1:])
    params = rest + list(kwargs.values())
    if name == "center":
        check_width(next((p for p in params if isinstance(p, int)), 0))
    elif name == "indent":
        width = next((p for p in params if isinstance(p, (int, str)) and not isinstance(p, bool)), 4)
        width = width if isinstance(width, int) else len(width)
        check_width(len(soft_str(value)) + (soft_str(value).count("\n") + 1) * width)
    elif name == "format" and isinstance(value, str):
        check_percent(value, tuple(rest) or tuple(kwargs.values()))
    elif name == "join":
        items = value if isinstance(value, (list, tuple)) else []
        sep = next((p for p in params if isinstance(p, str)), "")
        check_width(sum(len(soft_str(i)) for i in items if isinstance(i, str)) + len(sep) * len(items))
    elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
        check_str_method("replace", value, tuple(rest))
    elif name in ("wordwrap", "truncate", "slice", "batch"):
        for p in params:
            if isinstance(p, int) and not isinstance(p, bool):
                check_width(p)
            elif isinstance(p, str):
                check_width(len(p) * (len(soft_str(value)) + 1))


class BudgetFormatter(Formatter):
    """Mixin for Jinja's sandboxed formatters: each field's spec is sized before it is formatted."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        check_format_spec(format_spec)
        rv = super().format_field(value, format_spec)
        charge(len(rv))
        return rv
