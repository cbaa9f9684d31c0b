"""Grouping quality and speed on a labelled corpus of events made by the real sentry-sdk.

    python benchmarks/grouping_quality.py generate   # rebuild grouping_corpus/events.jsonl.gz
    python benchmarks/grouping_quality.py            # measure (generates the corpus if missing)
    python benchmarks/grouping_quality.py --backends tfidf,wordllama,minilm

The corpus: ``grouping_corpus/shopapp`` is a small fake shop, ``grouping_corpus/sites.py``
lists its crash sites (label = site id) with random data per request. The real ``sentry-sdk``
captures each failure; a custom transport only collects the envelopes instead of sending them.

Measured, in one stream of shuffled events:
  (a) hash grouping alone (``group_event``),
  (b) hash, then for each new hash a similarity merge into the nearest issue when its score
      reaches a threshold, per backend and threshold,
and pairwise and B-cubed precision/recall/F1 of the resulting issues against the labels, the
top-1 accuracy of ``nearest`` for new hashes whose site already has an issue, and the
throughput of ``group_event``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS_DIR = HERE / "grouping_corpus"
CORPUS = CORPUS_DIR / "events.jsonl.gz"
sys.path.insert(0, str(HERE.parent / "src"))

from spyglass.errors.grouping import (
    GroupingConfig,
    SimilarityIndex,
    features_text,
    group_event,
)
from spyglass.errors.grouping.embedders import BackendUnavailable, load_embedder

THRESHOLDS = {
    "tfidf": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "wordllama": [0.85, 0.9, 0.95, 0.97, 0.98, 0.99],
    "minilm": [0.85, 0.9, 0.95, 0.97, 0.98, 0.99],
}


# ---------------------------------------------------------------- corpus generation


def generate(path: Path = CORPUS, seed: int = 20261127, low: int = 5, high: int = 12) -> int:
    """Capture every site ``low..high`` times with the real SDK; write ``{"site", "event"}``."""
    import logging

    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.transport import Transport

    sys.path.insert(0, str(CORPUS_DIR))
    import shopapp.api
    import shopapp.billing
    import shopapp.catalog
    import shopapp.inventory
    import shopapp.jobs
    import shopapp.notify
    import shopapp.orders
    import shopapp.reports
    import shopapp.search
    import shopapp.storage
    import shopapp.users  # noqa: F401
    from shopapp import web
    from sites import SITES

    captured: list[dict[str, Any]] = []

    class CollectingTransport(Transport):
        """Delivery replaced, everything else is the SDK's own event building."""

        def capture_envelope(self, envelope: Any) -> None:
            for item in envelope.items:
                if item.type == "event":
                    captured.append(item.payload.json)

    # Keep the terminal quiet; the SDK hooks the logging module itself, not a handler.
    logging.getLogger("shopapp").addHandler(logging.NullHandler())
    logging.getLogger("shopapp").propagate = False
    sentry_sdk.init(
        dsn="http://public@localhost/1",
        transport=CollectingTransport,
        release="shop@1.4.2",
        environment="benchmark",
        default_integrations=False,
        integrations=[LoggingIntegration(level=None, event_level=logging.WARNING)],
        in_app_include=["shopapp"],
        include_local_variables=False,
        max_breadcrumbs=0,
    )
    rng = random.Random(seed)
    labelled: list[dict[str, Any]] = []
    for number, site in enumerate(SITES):
        site, make = site
        for _ in range(rng.randint(low, high)):
            route, request = make(rng)
            if number % 3 == 0:  # a third of the sites also see anonymous requests
                request["anonymous"] = rng.random() < 0.5
            before = len(captured)
            with sentry_sdk.new_scope() as scope:
                scope.set_transaction_name(route)
                scope.set_tag("route", route)
                try:
                    web.handle(route, **request)
                except Exception:
                    sentry_sdk.capture_exception()
            new = captured[before:]
            if len(new) != 1:
                raise SystemExit(f"site {site} produced {len(new)} events, expected 1")
            labelled.append({"site": site, "event": new[0]})
    sentry_sdk.flush()
    sentry_sdk.get_client().close()
    # Paths of this checkout are not part of the corpus: make them machine-independent.
    text = json.dumps(labelled).replace(str(CORPUS_DIR), "/srv/shop")
    labelled = json.loads(text)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for row in labelled:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    return len(labelled)


def load(path: Path = CORPUS) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------- metrics


def pairwise(labels: list[str], clusters: list[int]) -> tuple[float, float]:
    """Pairwise precision and recall: of event pairs put together, how many belong together."""

    def pairs(counts: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    together = pairs(Counter(clusters))
    same_label = pairs(Counter(labels))
    both = pairs(Counter(zip(labels, clusters)))
    return (both / together if together else 1.0), (both / same_label if same_label else 1.0)


def bcubed(labels: list[str], clusters: list[int]) -> tuple[float, float]:
    by_cluster = Counter(clusters)
    by_label = Counter(labels)
    both = Counter(zip(labels, clusters))
    n = len(labels)
    precision = sum(both[(l, c)] / by_cluster[c] for l, c in zip(labels, clusters)) / n
    recall = sum(both[(l, c)] / by_label[l] for l, c in zip(labels, clusters)) / n
    return precision, recall


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


# ---------------------------------------------------------------- the stream


class _PrecomputedIndex(SimilarityIndex):
    """The real index, fed vectors computed once per event so thresholds sweep cheaply."""

    vectors: dict[int, tuple[Any, int]] = {}

    def _vector(self, event: dict[str, Any]) -> tuple[Any, int]:
        cached = self.vectors.get(id(event))
        return cached if cached is not None else super()._vector(event)


def run_stream(
    events: list[dict[str, Any]], backend: str | None, threshold: float, vectors: dict | None = None
) -> tuple[list[int], dict[str, Any]]:
    """Assign issues in arrival order; return each event's issue and retrieval stats."""
    index = None
    if backend is not None:
        _PrecomputedIndex.vectors = vectors or {}
        index = _PrecomputedIndex(backend, merge_threshold=threshold)
    hash_issue: dict[str, int] = {}
    issue_of: list[int] = []
    next_issue = 0
    nearest_right = nearest_asked = 0
    issue_sites: dict[int, Counter] = defaultdict(Counter)
    for event, site in ((row["event"], row["site"]) for row in events):
        grouping_hash = group_event(event).hash
        issue = hash_issue.get(grouping_hash)
        if issue is None and index is not None:
            hits = index.nearest(event, k=1)
            if any(site in issue_sites[i] for i in issue_sites):
                nearest_asked += 1
                if hits and issue_sites[hits[0][0]].most_common(1)[0][0] == site:
                    nearest_right += 1
            if hits and hits[0][1] >= index.merge_threshold:
                issue = hits[0][0]
        if issue is None:
            issue = next_issue
            next_issue += 1
        if grouping_hash not in hash_issue:
            hash_issue[grouping_hash] = issue
            if index is not None:
                index.add(issue, event)
        issue_sites[issue][site] += 1
        issue_of.append(issue)
    stats = {"issues": next_issue, "nearest_top1": (nearest_right, nearest_asked)}
    return issue_of, stats


def precompute(events: list[dict[str, Any]], backend: str) -> dict[int, tuple[Any, int]]:
    index = SimilarityIndex(backend)
    if backend == "tfidf":
        return {id(row["event"]): index._vector(row["event"]) for row in events}
    texts = [features_text(row["event"]) for row in events]
    vectors = load_embedder(backend).embed(texts)
    import zlib

    return {
        id(row["event"]): (vectors[i], zlib.crc32(texts[i].encode()))
        for i, row in enumerate(events)
    }


# ---------------------------------------------------------------- main


RULES = GroupingConfig.from_text(
    fingerprint_rules="""
error.type:DatabaseUnavailable -> system-down
message:"*timed out*" -> timeouts, {{ default }}
logger:shopapp.* level:error -> shop-errors, {{ logger }}
stack.module:shopapp.storage stack.function:acquire -> pool
""",
    stacktrace_rules="""
stack.module:shopapp.web -group
stack.abs_path:**/site-packages/** -app
stack.function:_timing_middleware ^+group
family:javascript stack.abs_path:**/node_modules/** -app
""",
)


def throughput(events: list[dict[str, Any]], seconds: float = 3.0, config=None) -> float:
    payloads = [row["event"] for row in events]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for event in payloads:
            group_event(event, config)
        done += len(payloads)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="measure", choices=["measure", "generate"])
    parser.add_argument("--backends", default="tfidf,wordllama,minilm")
    parser.add_argument("--seed", type=int, default=1, help="arrival order shuffle")
    args = parser.parse_args()
    if args.command == "generate" or not CORPUS.exists():
        count = generate()
        print(f"corpus: wrote {count} events to {CORPUS.relative_to(HERE.parent)}")
        if args.command == "generate":
            return

    events = load()
    random.Random(args.seed).shuffle(events)
    labels = [row["site"] for row in events]
    variants = Counter(group_event(row["event"]).variant for row in events)
    hashes = len({group_event(row["event"]).hash for row in events})
    print(f"corpus: {len(events)} events from {len(set(labels))} crash sites "
          f"(sentry-sdk, shuffled with seed {args.seed}); {hashes} distinct hashes")
    print("variants: " + ", ".join(f"{k} {v}" for k, v in variants.most_common()))
    print()
    header = f"{'method':<28} {'issues':>6} {'pair P':>7} {'pair R':>7} {'pair F1':>7} " \
             f"{'B3 P':>6} {'B3 R':>6} {'B3 F1':>6} {'top1':>9}"
    print(header)
    print("-" * len(header))

    def report(name: str, clusters: list[int], stats: dict[str, Any]) -> None:
        pp, pr = pairwise(labels, clusters)
        bp, br = bcubed(labels, clusters)
        right, asked = stats["nearest_top1"]
        top1 = f"{right}/{asked}" if asked else "-"
        print(f"{name:<28} {stats['issues']:>6} {pp:>7.3f} {pr:>7.3f} {f1(pp, pr):>7.3f} "
              f"{bp:>6.3f} {br:>6.3f} {f1(bp, br):>6.3f} {top1:>9}")

    clusters, stats = run_stream(events, None, 1.0)
    report("hash only", clusters, stats)
    for backend in args.backends.split(","):
        try:
            started = time.perf_counter()
            vectors = precompute(events, backend)
            encode_ms = (time.perf_counter() - started) * 1000 / len(events)
        except BackendUnavailable as exc:
            print(f"{backend}: not installed ({exc})")
            continue
        for threshold in THRESHOLDS[backend]:
            clusters, stats = run_stream(events, backend, threshold, vectors)
            report(f"hash + {backend} @ {threshold:.2f}", clusters, stats)
        # Held out: pick the threshold on half of the sites, measure on the other half. Sites
        # split by area ("page.negative" and "page.not_int" stay together), so each half keeps
        # its look-alike sites.
        areas = sorted({site.split(".")[0] for site in labels})
        tune = [row for row in events if areas.index(row["site"].split(".")[0]) % 2 == 0]
        test = [row for row in events if areas.index(row["site"].split(".")[0]) % 2 == 1]
        tune_sites = len({row["site"] for row in tune})
        test_sites = len({row["site"] for row in test})

        def score(rows: list[dict[str, Any]], threshold: float) -> float:
            clusters, _ = run_stream(rows, backend, threshold, vectors)
            return f1(*pairwise([row["site"] for row in rows], clusters))

        best = max(THRESHOLDS[backend], key=lambda t: score(tune, t))
        test_hash, _test_stats = run_stream(test, None, 1.0)
        test_merged, _merged_stats = run_stream(test, backend, best, vectors)
        test_labels = [row["site"] for row in test]
        hp, hr = pairwise(test_labels, test_hash)
        mp, mr = pairwise(test_labels, test_merged)
        print(f"{'':<28} held out: threshold {best:.2f} tuned on {tune_sites} "
              f"sites; on the other {test_sites}: hash F1 {f1(hp, hr):.3f} (P {hp:.3f} R {hr:.3f})"
              f" -> merged F1 {f1(mp, mr):.3f} (P {mp:.3f} R {mr:.3f})")
        print(f"{'':<28} ({backend}: {encode_ms:.2f} ms per event to vectorize)")

    print()
    rate = throughput(events)
    print(f"group_event: {rate:,.0f} events/s on one core (corpus events, no rules)")
    rate = throughput(events, config=RULES)
    print(f"group_event: {rate:,.0f} events/s on one core (4 fingerprint + 4 stack trace rules)")
    index = SimilarityIndex()
    for i, row in enumerate(events):
        index.add(i, row["event"])
    probes = [row["event"] for row in events[:200]]
    started = time.perf_counter()
    for event in probes:
        index.nearest(event, k=5)
    per_query = (time.perf_counter() - started) * 1000 / len(probes)
    print(f"SimilarityIndex(tfidf).nearest: {per_query:.2f} ms per query over {len(index)} issues")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
