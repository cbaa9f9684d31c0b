"""The read side of error tracking on events made by the real sentry-sdk (both stacks)."""

from __future__ import annotations

import datetime as dt

import pytest
import sentry_sdk
from sdk_capture import sdk

from spyglass.errors import queries
from spyglass.errors.models import Issue
from spyglass.errors.state import Change, IssueStatus, change_status


def send(client, tenant, envelopes):  # type: ignore[no-untyped-def]
    url = f"/api/{tenant.project_id}/envelope/?sentry_key={tenant.public_key}"
    for e in envelopes:
        assert client.post(url, content=e).status_code == 200


def feedback_envelope(event_id: str, name: str, email: str, comments: str) -> bytes:
    import orjson

    report = {"event_id": event_id, "name": name, "email": email, "comments": comments}
    return (orjson.dumps({"event_id": event_id}) + b'\n{"type":"user_report"}\n'
            + orjson.dumps(report) + b"\n")


def charge(order_id: int) -> None:
    amount = order_id * 2  # noqa: F841 - a local variable the SDK sends
    raise ValueError(f"card declined for order {order_id}")


def lookup(sku: str) -> None:
    {}[sku]


@pytest.fixture
def shop(client, tenant_factory):  # type: ignore[no-untyped-def]
    t = tenant_factory("shop")
    with sdk(release="shop@1.0", environment="production") as envelopes:
        for n, user in enumerate(["ann", "bob", "ann"]):
            sentry_sdk.set_user({"id": user})
            sentry_sdk.set_tag("plan", "pro" if n else "free")
            sentry_sdk.add_breadcrumb(category="http", message=f"POST /pay/{n}")
            try:
                charge(100 + n)
            except ValueError:
                sentry_sdk.capture_exception()
    with sdk(release="shop@1.1", environment="staging") as more:
        sentry_sdk.set_user({"email": "cy@example.com"})
        try:
            lookup("sku-9")
        except KeyError:
            with sentry_sdk.new_scope() as scope:
                scope.add_attachment(bytes=b"cart=1", filename="cart.txt")
                sentry_sdk.capture_exception()
        sentry_sdk.capture_message("cache warmed in 12 ms", level="info")
    send(client, t, envelopes + more)
    return t


def test_issue_list_stats_sorts_filters_and_statuses(client, shop):
    rt = client.app.state.runtime
    with rt.db.session() as s:
        listed = queries.search_issues(s, rt.store, shop.project_id, "shop", "is:unresolved")
        assert [r.issue.title for r in listed.rows] == [
            "cache warmed in 12 ms", "KeyError: 'sku-9'", "ValueError: card declined for order 100"]
        card = listed.rows[-1]
        assert (card.events, card.users, card.short_id) == (3, 2, "SHOP-1")
        assert card.badges == ["new"] and card.merged == 0
        assert card.series is not None and card.series.total == 3
        assert len(card.series.counts) == 28  # 14 days of 12-hour buckets
        assert listed.total == 3 and listed.status_counts["unresolved"] == 3

        by_events = queries.search_issues(s, rt.store, shop.project_id, "shop", "", sort="events")
        assert by_events.rows[0].short_id == "SHOP-1"

        def titles(q: str, **kw) -> list[str]:  # type: ignore[no-untyped-def]
            return [r.issue.title for r in queries.search_issues(
                s, rt.store, shop.project_id, "shop", q, **kw).rows]

        assert titles("release:shop@1.0") == ["ValueError: card declined for order 100"]
        assert titles("user:ann") == ["ValueError: card declined for order 100"]
        assert titles("plan:pro") == ["ValueError: card declined for order 100"]
        assert titles("level:info") == ["cache warmed in 12 ms"]
        assert titles("sku") == ["KeyError: 'sku-9'"]
        assert titles("SHOP-2") == ["KeyError: 'sku-9'"]
        assert titles("", environment="staging") == ["cache warmed in 12 ms", "KeyError: 'sku-9'"]
        assert titles("timesSeen:>2") == ["ValueError: card declined for order 100"]
        assert titles("firstSeen:+1d") == []
        assert titles("lastSeen:-1h", sort="first_seen")[0] == "cache warmed in 12 ms"

        # Only the matching events count: the filtered user count of the card issue.
        assert queries.search_issues(s, rt.store, shop.project_id, "shop", "user:ann"
                                     ).rows[0].events == 2

        issue = s.get(Issue, card.issue.id)
        change_status(s, rt.store, issue, Change(IssueStatus.resolved))
        s.commit()
        after = queries.search_issues(s, rt.store, shop.project_id, "shop", "is:resolved")
        assert [r.short_id for r in after.rows] == ["SHOP-1"]
        assert after.status_counts == {"unresolved": 2, "resolved": 1, "ignored": 0}

        paged = queries.search_issues(s, rt.store, shop.project_id, "shop", "", limit=2)
        assert paged.total == 3 and paged.next_offset == 2 and paged.prev_offset is None
        rest = queries.search_issues(s, rt.store, shop.project_id, "shop", "", limit=2, offset=2)
        assert len(rest.rows) == 1 and rest.prev_offset == 0

        assert queries.has_events(rt.store, shop.project_id)
        assert not queries.has_events(rt.store, shop.project_id + 999)
        f = queries.facets(rt.store, shop.project_id, dt.datetime(2000, 1, 1))
        assert sorted(f["release"]) == ["shop@1.0", "shop@1.1"]
        assert sorted(f["environment"]) == ["production", "staging"]


def test_issue_stats_tags_events_and_navigation(client, shop):
    rt = client.app.state.runtime
    store = rt.store
    with rt.db.session() as s:
        card = queries.issue_by_short_id(s, shop.project_id, "SHOP-1")
        assert card is not None and queries.issue_by_short_id(s, shop.project_id, "x") is None
        stats = queries.issue_stats(store, shop.project_id, card.id)
        assert (stats.events, stats.users, stats.events_24h) == (3, 2, 3)
        assert stats.first_release == stats.last_release == "shop@1.0"
        assert stats.first_seen <= stats.last_seen

        tags = {t.key: t for t in queries.tag_distribution(store, shop.project_id, card.id)}
        assert list(tags)[:3] == ["level", "handled", "release"]
        assert tags["plan"].total == 3 and tags["plan"].distinct == 2
        assert [(v.value, v.count, round(v.percent)) for v in tags["plan"].top] == [
            ("pro", 2, 67), ("free", 1, 33)]
        assert tags["user"].top[0].value == "id:ann"
        assert "browser.name" not in tags

        chart = queries.issue_series(store, shop.project_id, card.id, "24h")
        assert chart.total == 3 and len(chart.counts) == 24

        page = queries.issue_events(store, shop.project_id, card.id, limit=2)
        assert page.total == 3 and len(page.events) == 2 and page.next_cursor
        rest = queries.issue_events(store, shop.project_id, card.id, limit=2, cursor=page.next_cursor)
        assert len(rest.events) == 1 and rest.next_cursor is None
        ids = [e.event_id for e in page.events + rest.events]
        assert len(set(ids)) == 3
        assert queries.issue_events(store, shop.project_id, card.id, query="plan:free").total == 1

        latest = queries.edge_event_id(store, shop.project_id, card.id)
        oldest = queries.edge_event_id(store, shop.project_id, card.id, latest=False)
        assert latest == ids[0] and oldest == ids[-1]
        middle = queries.get_event(store, shop.project_id, ids[1])
        assert middle is not None and middle.data["exception"]["values"][0]["type"] == "ValueError"
        nav = queries.neighbors(store, shop.project_id, middle)
        assert (nav.oldest, nav.older, nav.newer, nav.latest) == (ids[2], ids[2], ids[0], ids[0])
        first = queries.get_event(store, shop.project_id, oldest)
        assert first is not None
        assert queries.neighbors(store, shop.project_id, first).older is None

        # Dashed ids work; another project's events do not exist here.
        import uuid

        assert queries.get_event(store, shop.project_id, str(uuid.UUID(latest))) is not None
        assert queries.get_event(store, shop.project_id + 1, latest) is None
        assert queries.get_event(store, shop.project_id, "not-an-id") is None


def test_attachments_feedback_similar_and_outcomes(client, shop, tenant_factory):
    rt = client.app.state.runtime
    store = rt.store
    with rt.db.session() as s:
        sku = queries.issue_by_short_id(s, shop.project_id, "SHOP-2")
        event_id = queries.edge_event_id(store, shop.project_id, sku.id)
        [att] = queries.event_attachments(store, shop.project_id, event_id)
        assert (att.filename, att.size) == ("cart.txt", 6)
        assert queries.get_attachment(store, shop.project_id, att.attachment_id) is not None
        assert queries.get_attachment(store, shop.project_id + 1, att.attachment_id) is None
        assert rt.blobs.get(att.blob_key) == b"cart=1"

    # User feedback about the event (a user_report item; the Python SDK has no API for it).
    send(client, shop, [feedback_envelope(event_id, "Cy", "cy@example.com", "Cart broke")])
    [fb] = queries.issue_feedback(store, shop.project_id, sku.id)
    assert fb.comments == "Cart broke" and fb.event_id == event_id
    assert queries.event_feedback(store, shop.project_id, event_id)[0].name == "Cy"

    with rt.db.session() as s:
        card = queries.issue_by_short_id(s, shop.project_id, "SHOP-1")
        similar = queries.similar_issues(s, card, "shop")
        assert similar and all(0 < x.score <= 1 for x in similar)
        assert card.id not in [x.issue.id for x in similar]
        assert {x.short_id for x in similar} <= {"SHOP-2", "SHOP-3"}
        hashes = queries.issue_hashes(s, store, card)
        assert len(hashes) == 1 and hashes[0].events == 3
        assert queries.merged_issues(s, card) == []

    # A client report lands in the outcomes summary.
    import orjson

    report = {"timestamp": dt.datetime.now(dt.UTC).isoformat(),
              "discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 4}]}
    body = b'{}\n{"type":"client_report"}\n' + orjson.dumps(report) + b"\n"
    send(client, shop, [body])
    [o] = queries.outcomes(store, shop.project_id, dt.datetime(2000, 1, 1))
    assert (o.outcome, o.reason, o.category, o.quantity) == ("client_discard", "queue_overflow",
                                                             "error", 4)
