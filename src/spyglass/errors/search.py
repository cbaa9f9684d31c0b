"""The issue search syntax, as Sentry users type it, and its translation to SQL conditions.

A query is a list of space-separated terms::

    is:unresolved level:error release:shop@1.2 browser:"Chrome 120" !environment:staging
    firstSeen:-24h lastSeen:+7d timesSeen:>10 user:ann@example.com card declined

- ``is:`` a status (``unresolved``, ``resolved``, ``ignored``/``archived``, ``all``) or a
  sub-status (``new``, ``regressed``, ``escalating``, ``ongoing``);
- ``firstSeen:`` / ``lastSeen:`` (also ``age:``) with ``-24h`` (within the last 24 hours),
  ``+7d`` (longer ago than 7 days), or ``>``, ``>=``, ``<``, ``<=`` and an ISO date/time;
  ``timesSeen:>10`` compares the number of events;
- ``level:``, ``release:``, ``environment:``, ``user:`` (any of id, email, username, IP),
  ``user.id:``, ``user.email:``, ``transaction:``, ``platform:``, ``error.type:``,
  ``error.value:``, ``trace:``, ``event.id:`` match event fields; ``has:key`` a tag's
  presence; any other ``key:value`` matches the tag ``key``;
- ``!key:value`` negates, ``key:"quoted value"`` holds spaces, ``key:[a, b]`` matches any of
  the list, ``*`` is a wildcard (``release:2.*``);
- the remaining words match the title, culprit or message (case-insensitive); a word like
  ``SHOP-12`` (the project's prefix) finds that issue by its short id.

:func:`parse` turns the text into a :class:`Search`; :func:`event_conditions` turns its
event-level part into SQL that runs on DuckDB and ClickHouse alike, with bound parameters.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

STATUSES = {"unresolved", "resolved", "ignored"}
STATUS_ALIASES = {"archived": "ignored", "muted": "ignored", "unresolved": "unresolved",
                  "resolved": "resolved", "ignored": "ignored"}
SUBSTATUSES = {"new", "regressed", "escalating", "ongoing"}
DEFAULT_QUERY = "is:unresolved"

#: Search keys that are columns of the events table.
COLUMNS = {
    "level": "level",
    "release": "release",
    "environment": "environment",
    "env": "environment",
    "platform": "platform",
    "transaction": "transaction",
    "error.type": "exception_type",
    "exception.type": "exception_type",
    "error.value": "exception_value",
    "exception.value": "exception_value",
    "trace": "trace_id",
    "trace.id": "trace_id",
    "event.id": "event_id",
    "id": "event_id",
}
USER_FIELDS = {"user.id": "id", "user.email": "email", "user.username": "username",
               "user.ip": "ip_address"}
TIME_KEYS = {"firstseen": "first_seen", "first_seen": "first_seen", "age": "first_seen",
             "lastseen": "last_seen", "last_seen": "last_seen"}
COUNT_KEYS = {"timesseen": "times_seen", "times_seen": "times_seen"}
ISSUE_KEYS = {"issue", "issue.id"}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_TOKEN = re.compile(
    r'(?P<neg>!?)(?P<key>[A-Za-z_][\w.\-]*):(?P<value>"(?:[^"\\]|\\.)*"|\[[^\]]*\]|\S*)'
    r'|"(?P<phrase>(?:[^"\\]|\\.)*)"'
    r"|(?P<word>\S+)"
)
_RELATIVE = re.compile(r"^([+-])(\d+)([smhdw])$")
_COMPARISON = re.compile(r"^(>=|<=|>|<|=)?(.+)$")
_SHORT_ID = re.compile(r"^[A-Za-z0-9][\w\-]*-(\d+)$")


class SearchError(ValueError):
    """A term that does not parse; the message is shown next to the search box."""


@dataclass
class Term:
    """A condition on events: ``key`` is a search key, ``values`` any-of (wildcards allowed)."""

    key: str
    values: list[str]
    negated: bool = False


@dataclass
class Search:
    """A parsed query. ``statuses`` None means any status."""

    statuses: set[str] | None = None
    substatuses: set[str] = field(default_factory=set)
    terms: list[Term] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    #: (operator, instant) pairs; operator one of > >= < <=
    first_seen: list[tuple[str, dt.datetime]] = field(default_factory=list)
    last_seen: list[tuple[str, dt.datetime]] = field(default_factory=list)
    times_seen: list[tuple[str, int]] = field(default_factory=list)
    #: Issue short ids (the number) named with ``issue:`` or typed as ``SHOP-12``.
    short_ids: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def has_event_filters(self) -> bool:
        return bool(self.terms or self.text)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _values(raw: str) -> list[str]:
    if raw.startswith("[") and raw.endswith("]"):
        return [_unquote(v.strip()) for v in raw[1:-1].split(",") if v.strip()]
    return [_unquote(raw)]


def parse_instant(value: str, now: dt.datetime) -> tuple[str, dt.datetime]:
    """``-24h`` → (">=", now-24h); ``+7d`` → ("<", now-7d); ``>2024-05-01`` → (">", …)."""
    m = _RELATIVE.match(value)
    if m:
        sign, amount, unit = m.groups()
        at = now - dt.timedelta(seconds=int(amount) * UNITS[unit])
        return (">=" if sign == "-" else "<"), at
    m = _COMPARISON.match(value)
    op, rest = (m.group(1) or ">="), m.group(2)
    if op == "=":
        op = ">="
    rel = re.match(r"^(\d+)([smhdw])$", rest)
    if rel:  # ">24h": older than a day, as Sentry reads it
        at = now - dt.timedelta(seconds=int(rel.group(1)) * UNITS[rel.group(2)])
        return {">": "<", ">=": "<=", "<": ">", "<=": ">="}[op], at
    try:
        at = dt.datetime.fromisoformat(rest)
    except ValueError:
        raise SearchError(f"not a time: {value!r} (try -24h, +7d or >2024-05-01)") from None
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    return op, at


def _count(value: str) -> tuple[str, int]:
    m = _COMPARISON.match(value)
    op, rest = (m.group(1) or "="), m.group(2)
    if not rest.isdigit():
        raise SearchError(f"not a number: {value!r} (try timesSeen:>10)")
    return op, int(rest)


def tokens(query: str) -> list[str]:
    """The query's terms as typed (quotes kept), for rebuilding it."""
    return [m.group(0) for m in _TOKEN.finditer(query or "")]


def parse(query: str, now: dt.datetime | None = None, short_prefix: str | None = None) -> Search:
    """Parse ``query``; bad terms are collected in ``errors`` and otherwise ignored.

    ``short_prefix`` is the project's short-id prefix (``SHOP``): a word ``SHOP-12`` then
    finds that issue instead of searching the text.
    """
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    s = Search()
    for m in _TOKEN.finditer(query or ""):
        try:
            if m.group("key") is not None:
                _term(s, m.group("key"), m.group("value"), bool(m.group("neg")), now)
            elif m.group("phrase") is not None:
                if m.group("phrase").strip():
                    s.text.append(_unquote('"' + m.group("phrase") + '"'))
            else:
                word = m.group("word")
                short = _SHORT_ID.match(word)
                if short and short_prefix and word.upper().startswith(short_prefix.upper() + "-"):
                    s.short_ids.add(int(short.group(1)))
                else:
                    s.text.append(word)
        except SearchError as exc:
            s.errors.append(str(exc))
    return s


def _term(s: Search, key: str, raw: str, negated: bool, now: dt.datetime) -> None:
    lower = key.lower()
    values = _values(raw)
    if not values or values == [""]:
        raise SearchError(f"{key}: needs a value")
    if lower == "is":
        for v in values:
            v = v.lower()
            if v == "all":
                s.statuses = None
            elif v in STATUS_ALIASES:
                s.statuses = (s.statuses or set()) | {STATUS_ALIASES[v]}
            elif v in SUBSTATUSES:
                s.substatuses.add(v)
            else:
                raise SearchError(f"is:{v} is not a status (unresolved, resolved, ignored, all,"
                                  " new, regressed, escalating)")
        return
    if lower in TIME_KEYS:
        target = s.first_seen if TIME_KEYS[lower] == "first_seen" else s.last_seen
        target.append(parse_instant(values[0], now))
        return
    if lower in COUNT_KEYS:
        s.times_seen.append(_count(values[0]))
        return
    if lower in ISSUE_KEYS:
        for v in values:
            m = _SHORT_ID.match(v)
            num = m.group(1) if m else v
            if not num.isdigit():
                raise SearchError(f"issue:{v} is not an issue id like SHOP-12")
            s.short_ids.add(int(num))
        return
    if lower in ("message", "title"):
        s.text.extend(values)
        return
    s.terms.append(Term(lower if (lower in COLUMNS or lower in USER_FIELDS or lower in
                                  ("user", "has")) else key, values, negated))


def default(query: str | None) -> str:
    """The query a page starts from: Sentry's ``is:unresolved`` when none was given."""
    return DEFAULT_QUERY if query is None else query


def with_key(query: str, key: str, value: str | None) -> str:
    """``query`` with every ``key:`` term replaced by ``key:value`` (removed when None)."""
    kept = [t for t in tokens(query) if not re.match(rf"^!?{re.escape(key)}:", t, re.IGNORECASE)]
    if value:
        v = f'"{value}"' if (" " in value or '"' in value) else value
        kept.insert(0, f"{key}:{v}")
    return " ".join(kept)


def value_of(query: str, key: str) -> str | None:
    """The value of the first (non-negated) ``key:`` term, unquoted."""
    for t in tokens(query):
        m = re.match(rf"^{re.escape(key)}:(.*)$", t, re.IGNORECASE)
        if m:
            return _unquote(m.group(1))
    return None


def quote(value: str) -> str:
    """A value as a search term value: quoted when it has spaces or quotes."""
    if value == "" or re.search(r'[\s"\[\]]', value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


# -- SQL -------------------------------------------------------------------------------------


class _Params:
    def __init__(self, prefix: str) -> None:
        self.values: dict[str, object] = {}
        self._prefix = prefix

    def add(self, value: object, type_: str = "String") -> str:
        name = f"{self._prefix}{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{type_}}}"


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def like(column: str, placeholder: str, dialect: str) -> str:
    """``column LIKE pattern`` with backslash escapes on both engines."""
    if dialect == "clickhouse":
        return f"{column} LIKE {placeholder}"
    return f"{column} LIKE {placeholder} ESCAPE '\\'"


def _match(column: str, values: list[str], p: _Params, dialect: str) -> str:
    parts = []
    for v in values:
        if "*" in v:
            parts.append(like(column, p.add(_like_pattern(v)), dialect))
        else:
            parts.append(f"{column} = {p.add(v)}")
    return "(" + " OR ".join(parts) + ")"


def contains_ci(column: str, placeholder: str, dialect: str) -> str:
    """Case-insensitive substring test."""
    if dialect == "clickhouse":
        return f"positionCaseInsensitiveUTF8({column}, {placeholder}) > 0"
    return f"contains(lower({column}), lower({placeholder}))"


def tag_value(key_placeholder: str) -> str:
    """A tag's value, '' when the event lacks the tag (NULL on DuckDB, '' on ClickHouse)."""
    return f"coalesce(tags[{key_placeholder}], '')"


def event_conditions(search: Search, dialect: str, prefix: str = "s") -> tuple[list[str], dict[str, object]]:
    """SQL conditions on the events table for the event-level part of ``search``."""
    p = _Params(prefix)
    out: list[str] = []
    for term in search.terms:
        if term.key == "has":
            cond = "(" + " OR ".join(f"{tag_value(p.add(v))} != ''" for v in term.values) + ")"
        elif term.key in COLUMNS:
            cond = _match(COLUMNS[term.key], term.values, p, dialect)
        elif term.key == "user":
            alts = []
            for v in term.values:
                if "*" in v:
                    alts.append(like("user_key", p.add("%:" + _like_pattern(v)), dialect))
                else:
                    keys = [v] + [f"{f}:{v}" for f in ("id", "email", "username", "ip_address")]
                    alts.append("user_key IN (" + ", ".join(p.add(k) for k in keys) + ")")
            cond = "(" + " OR ".join(alts) + ")"
        elif term.key in USER_FIELDS:
            field_ = USER_FIELDS[term.key]
            cond = _match("user_key", [f"{field_}:{v}" for v in term.values], p, dialect)
        else:
            cond = _match(tag_value(p.add(term.key)), term.values, p, dialect)
        out.append(f"NOT {cond}" if term.negated else cond)
    for text in search.text:
        ph = p.add(text)
        out.append("(" + " OR ".join(contains_ci(c, ph, dialect) for c in
                                     ("title", "culprit", "exception_value")) + ")")
    return out, p.values
