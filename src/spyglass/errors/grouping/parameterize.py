"""Replace the variable parts of a message (ids, numbers, addresses, times) with placeholders.

Two events from the same crash site often differ only in the data they carried:
``"order 1234 not found"`` and ``"order 98 not found"``. Grouping hashes and similarity
features use the parameterized text, ``"order <int> not found"``, so such events agree.
"""

from __future__ import annotations

import re

__all__ = ["PLACEHOLDERS", "parameterize"]

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?"
_TIME = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?[AaPp][Mm])?"
_ZONE = r"(?:\s?(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT))?"
_ISO_DATE = r"\d{4}-\d{2}-\d{2}"
_SLASH_DATE = r"\d{1,4}/\d{1,2}/\d{1,4}"
_TEXT_DATE = rf"(?:{_WEEKDAY}\s)?(?:\d{{1,2}}\s{_MONTH},?\s\d{{4}}|{_MONTH}\s\d{{1,2}},?\s\d{{4}})"
_H = r"[0-9a-fA-F]{1,4}"

_TEXT_DATETIME = rf"{_TEXT_DATE}\s{_TIME}{_ZONE}"

# One alternation scanned once: at each position the leftmost alternative that matches wins,
# so the specific shapes (URL, e-mail, UUID, datetime) come before the generic ones (hex, int)
# and a URL's digits are never replaced piecemeal. The alternatives for URLs, e-mails and
# dates written with month names are costly to try at every position, so they join the
# alternation only when the text holds a "://", an "@" or a month name.
# Boundaries treat a placeholder's "<" and ">" like letters: text next to a placeholder must
# parse as it did next to the value it replaced, or a second pass would change more.
_S = r"(?<![\w>])"
_E = r"(?![\w<])"
_URL = ("url", _S + r"[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s\"'<>`]+")
_EMAIL = ("email", r"(?<![\w.+>-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}" + _E)
_TEXT_DATES = [("datetime", _S + _TEXT_DATETIME), ("date", rf"{_S}{_TEXT_DATE}{_E}")]
_COMMON: list[tuple[str, str]] = [
    ("uuid", rf"{_S}[0-9a-fA-F]{{8}}-?[0-9a-fA-F]{{4}}-?[0-9a-fA-F]{{4}}-?[0-9a-fA-F]{{4}}-?[0-9a-fA-F]{{12}}{_E}"),
    (
        "datetime",
        (
            rf"(?=\d){_S}(?:{_ISO_DATE}[T ]{_TIME}{_ZONE}"  # ISO 8601 and SQL
            rf"|\d{{1,2}}/{_MONTH}/\d{{4}}:{_TIME}(?:\s[+-]\d{{4}})?"  # common log format
            rf"|{_SLASH_DATE}[ ,]+{_TIME})"
        ),
    ),
    ("date", rf"(?=\d){_S}(?:{_ISO_DATE}|{_SLASH_DATE}){_E}"),
    (
        "ip",
        (
            r"(?=[0-9a-fA-F:])(?<![\w:.>])(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d{1,5})?"
            rf"|(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,6}}:(?:{_H}(?::{_H}){{0,5}})?|::{_H}(?::{_H}){{0,6}})"
            r"(?![\w:.<])"
        ),
    ),
    ("time", rf"(?=\d)(?<![\w:>]){_TIME}(?![\w:<])"),
    # Long hex runs only count when they hold a digit and a letter, so English words spelled
    # with a-f ("facade", "deadbeef") and plain numbers stay what they are.
    (
        "hex",
        (
            rf"(?=[0-9a-fA-F]){_S}(?:0[xX][0-9a-fA-F]+"
            rf"|(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{{7,}}){_E}"
        ),
    ),
    ("duration", r"(?=\d)(?<![\w.>])\d+(?:\.\d+)?(?:ms|us|µs|ns|s|sec|secs|m|min|mins|h|hrs?|d)" + _E),
    ("float", r"(?=[-+\d])(?<![\w.>])[-+]?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.<])"),
    # Digits glued to a separator still count ("worker-3", "job_12"), digits inside a word
    # ("utf8", "sha256") do not: those name things rather than carry data.
    ("int", r"(?=[-+\d])(?<![A-Za-z0-9.>])[-+]?\d+(?![A-Za-z0-9.<])"),
]

PLACEHOLDERS: dict[str, str] = {
    name: f"<{name}>" for name, _ in [_URL, _EMAIL, *_TEXT_DATES, *_COMMON]
}


def _compile(url: bool, email: bool, text_dates: bool) -> re.Pattern[str]:
    parts = [_URL] * url + [_EMAIL] * email + _TEXT_DATES * text_dates + _COMMON
    # Python allows a group name once per pattern, so repeated kinds get numbered names.
    seen: dict[str, int] = {}
    alternatives = []
    for name, pattern in parts:
        seen[name] = seen.get(name, 0) + 1
        alternatives.append(f"(?P<{name}_{seen[name]}>{pattern})")
    return re.compile("|".join(alternatives))


_REGEXES = {
    (url, email, dates): _compile(url, email, dates)
    for url in (False, True)
    for email in (False, True)
    for dates in (False, True)
}
# Every pattern needs a digit, an "@" or a scheme: text with none of them is returned untouched
# without running the alternation, which is the common case for exception values.
_MAY_MATCH = re.compile(r"[0-9@]|://")
_MONTH_NAME = re.compile(r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)")


def _placeholder(match: re.Match[str]) -> str:
    name = match.lastgroup or "int_1"
    return PLACEHOLDERS[name[: name.rindex("_")]]


def parameterize(text: str) -> str:
    """Return ``text`` with numbers, ids, addresses and times replaced by ``<kind>`` placeholders.

    Kinds: ``<url> <email> <uuid> <datetime> <date> <ip> <time> <hex> <duration> <float>
    <int>``. The result is stable: parameterizing it again changes nothing.
    """
    if not text or _MAY_MATCH.search(text) is None:
        return text
    regex = _REGEXES["://" in text, "@" in text, _MONTH_NAME.search(text) is not None]
    return regex.sub(_placeholder, text)
