"""Error grouping: which issue an event belongs to, and which issues look alike.

Pure Python (plus numpy for similarity); no server imports, so the ingest pipeline, the
issue pages and the benchmarks all call it the same way.

Grouping by hash, in Sentry's documented order::

    from spyglass.errors.grouping import GroupingConfig, group_event

    config = GroupingConfig.from_text(
        fingerprint_rules="error.type:DatabaseUnavailable -> system-down",
        stacktrace_rules="stack.module:django.* -app",
    )  # raises RuleSyntaxError(line, message) for a bad line
    grouping = group_event(event, config)  # config may be None
    grouping.hash        # 32 hex digits: the issue key within the project
    grouping.variant     # custom-fingerprint | app-stacktrace | system-stacktrace
                         # | exception | message | fallback
    grouping.components  # what went into the hash, for the "why grouped" panel
    grouping.title, grouping.culprit, grouping.metadata  # type, value, filename, function

The pieces, usable alone:

- ``parameterize(text) -> str`` replaces numbers, hex ids, UUIDs, e-mails, IPs, URLs, dates
  and times with ``<int>``, ``<hex>``, ``<uuid>``, ``<email>``, ``<ip>``, ``<url>``,
  ``<date>``, ``<datetime>``...
- ``parse_fingerprint_rules(text) -> list[FingerprintRule]`` and
  ``parse_stacktrace_rules(text) -> list[StacktraceRule]``.
- ``normalize_js_path(path) -> str``: a JavaScript file name without host, query and hashes.

Similarity, for events whose hash matches no issue yet::

    index = SimilarityIndex()            # backend="tfidf" (default, no model download);
                                         # "wordllama" or "minilm" when installed
    index.add(issue_id, event)           # an event of the issue (a few per issue is best)
    index.nearest(event, k=5)            # [(issue_id, score)], best first, score in [0, 1]
    if hits and hits[0][1] >= index.merge_threshold: ...  # merge into that issue
    index.remove(issue_id)
    data = index.to_bytes(); index = SimilarityIndex.from_bytes(data)
    features_text(event) -> str          # what the embedding backends read

``docs/grouping.md`` explains the choices and ``benchmarks/grouping_quality.py`` measures them.
"""

from .config import GroupingConfig
from .features import features_text
from .frames import normalize_js_path
from .group import Grouping, group_event
from .parameterize import parameterize
from .rules import (
    Action,
    FingerprintRule,
    Rule,
    RuleSyntaxError,
    StacktraceRule,
    parse_fingerprint_rules,
    parse_stacktrace_rules,
)


def __getattr__(name: str) -> object:
    # The similarity model needs numpy; ingest workers group events without it.
    if name == "SimilarityIndex":
        from .similarity import SimilarityIndex

        return SimilarityIndex
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Action",
    "FingerprintRule",
    "Grouping",
    "GroupingConfig",
    "Rule",
    "RuleSyntaxError",
    "SimilarityIndex",
    "StacktraceRule",
    "features_text",
    "group_event",
    "normalize_js_path",
    "parameterize",
    "parse_fingerprint_rules",
    "parse_stacktrace_rules",
]
