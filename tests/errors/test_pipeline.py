"""The error pipeline end to end: real sentry-sdk envelopes → issues, states, merges, extras."""

from __future__ import annotations

import time

import orjson
import sentry_sdk
from sdk_capture import sdk
from sqlalchemy import select

from spyglass.errors.models import ErrorSettings, Issue
from spyglass.errors.state import Change, IssueStatus, change_status


def send(client, tenant, envelopes: list[bytes]) -> list:  # type: ignore[no-untyped-def]
    url = f"/api/{tenant.project_id}/envelope/?sentry_key={tenant.public_key}"
    return [client.post(url, content=e) for e in envelopes]


def issues_of(client, project_id: int) -> list[Issue]:  # type: ignore[no-untyped-def]
    with client.app.state.runtime.db.session() as s:
        return list(s.scalars(select(Issue).where(Issue.project_id == project_id).order_by(Issue.id)))


def events_of(client, project_id: int) -> list[dict]:  # type: ignore[no-untyped-def]
    return client.app.state.runtime.store.rows(
        "SELECT event_id, issue_id, group_hash, title, release FROM events "
        "WHERE project_id = {p:UInt64} ORDER BY received_at", {"p": project_id})


def charge(order_id: int) -> None:
    raise ValueError(f"card declined for order {order_id}")


def lookup(user: str) -> None:
    {}[user]


def test_same_crash_site_groups_into_one_issue(client, tenant_factory):
    t = tenant_factory("grouping")
    with sdk(release="shop@1.0") as envelopes:
        for order in (101, 202, 303):
            try:
                charge(order)
            except ValueError:
                sentry_sdk.capture_exception()
        for user in ("ann", "bob"):
            try:
                lookup(user)
            except KeyError:
                sentry_sdk.capture_exception()
        sentry_sdk.capture_message("cache warmed in 12 ms")
        sentry_sdk.capture_message("cache warmed in 40 ms")
    assert all(r.status_code == 200 for r in send(client, t, envelopes))
    issues = issues_of(client, t.project_id)
    assert [i.title for i in issues] == [
        "ValueError: card declined for order 101", "KeyError: 'ann'", "cache warmed in 12 ms"]
    assert [i.variant for i in issues] == ["app-stacktrace", "app-stacktrace", "message"]
    events = events_of(client, t.project_id)
    assert len(events) == 7
    by_issue: dict[int, int] = {}
    for e in events:
        by_issue[e["issue_id"]] = by_issue.get(e["issue_id"], 0) + 1
    assert sorted(by_issue.values()) == [2, 2, 3]
    assert [i.short_id for i in issues] == [1, 2, 3]
    assert issues[0].culprit and "charge" in issues[0].culprit


def test_duplicate_event_ids_are_stored_once(client, tenant_factory):
    t = tenant_factory("dedup")
    with sdk() as envelopes:
        sentry_sdk.capture_message("once")
    send(client, t, envelopes * 3)
    assert len(events_of(client, t.project_id)) == 1


def test_resolved_issue_regresses_on_a_new_event(client, tenant_factory):
    t = tenant_factory("regress")
    rt = client.app.state.runtime
    with sdk(release="app@1") as first:
        sentry_sdk.capture_message("disk almost full")
    send(client, t, first)
    [issue] = issues_of(client, t.project_id)
    with rt.db.session() as s:
        change_status(s, rt.store, s.get(Issue, issue.id), Change(IssueStatus.resolved))
    assert client.app.state.errors.update_issue_states() == []
    time.sleep(0.01)
    with sdk(release="app@1") as again:
        sentry_sdk.capture_message("disk almost full")
    send(client, t, again)
    assert client.app.state.errors.update_issue_states() == [issue.id]
    [issue] = issues_of(client, t.project_id)
    assert (issue.status, issue.substatus) == ("unresolved", "regressed")


def test_resolved_in_next_release_ignores_the_current_release(client, tenant_factory):
    t = tenant_factory("nextrel")
    rt = client.app.state.runtime
    with sdk(release="app@1") as first:
        sentry_sdk.capture_message("slow query")
    send(client, t, first)
    [issue] = issues_of(client, t.project_id)
    with rt.db.session() as s:
        change_status(s, rt.store, s.get(Issue, issue.id),
                      Change(IssueStatus.resolved, in_next_release=True))
    with sdk(release="app@1") as same:
        sentry_sdk.capture_message("slow query")
    send(client, t, same)
    assert client.app.state.errors.update_issue_states() == []
    with sdk(release="app@2") as newer:
        sentry_sdk.capture_message("slow query")
    send(client, t, newer)
    assert client.app.state.errors.update_issue_states() == [issue.id]


def test_ignore_until_count(client, tenant_factory):
    t = tenant_factory("ignore")
    rt = client.app.state.runtime
    with sdk() as first:
        sentry_sdk.capture_message("noisy")
    send(client, t, first)
    [issue] = issues_of(client, t.project_id)
    with rt.db.session() as s:
        change_status(s, rt.store, s.get(Issue, issue.id), Change(IssueStatus.ignored, ignore_count=3))
    with sdk() as more:
        for _ in range(2):
            sentry_sdk.capture_message("noisy")
    send(client, t, more)
    assert client.app.state.errors.update_issue_states() == []
    with sdk() as last:
        sentry_sdk.capture_message("noisy")
    send(client, t, last)
    assert client.app.state.errors.update_issue_states() == [issue.id]
    assert issues_of(client, t.project_id)[0].substatus == "escalating"


def test_merge_and_unmerge_move_events(client, tenant_factory):
    t = tenant_factory("merge")
    rt = client.app.state.runtime
    with sdk() as envelopes:
        sentry_sdk.capture_message("alpha failure")
        sentry_sdk.capture_message("beta breakdown")
    send(client, t, envelopes)
    a, b = issues_of(client, t.project_id)
    service = client.app.state.errors
    # (The sends above cached "beta's hash -> b"; the service forgets that when it merges.)
    with rt.db.session() as s:
        service.merge(s, s.get(Issue, a.id), [s.get(Issue, b.id)])
    assert {e["issue_id"] for e in events_of(client, t.project_id)} == {a.id}
    with sdk() as later:
        sentry_sdk.capture_message("beta breakdown")
    send(client, t, later)
    assert {e["issue_id"] for e in events_of(client, t.project_id)} == {a.id}
    beta_hash = [e["group_hash"] for e in events_of(client, t.project_id) if e["title"] == "beta breakdown"][0]
    with rt.db.session() as s:
        new_id = service.unmerge(s, s.get(Issue, a.id), beta_hash).id
    events = events_of(client, t.project_id)
    assert sorted(e["issue_id"] for e in events) == sorted([a.id, new_id, new_id])
    with sdk() as after:  # and new beta events go to the split-out issue, not to a
        sentry_sdk.capture_message("beta breakdown")
    send(client, t, after)
    assert sorted(e["issue_id"] for e in events_of(client, t.project_id)) == sorted(
        [a.id, new_id, new_id, new_id])


def test_fingerprint_rules_from_project_settings(client, tenant_factory):
    t = tenant_factory("rules")
    rt = client.app.state.runtime
    with rt.db.session() as s:
        s.add(ErrorSettings(project_id=t.project_id,
                            fingerprint_rules='message:"*timeout*" -> timeouts'))
    with sdk() as envelopes:
        sentry_sdk.capture_message("db timeout after 3s")
        sentry_sdk.capture_message("redis timeout on GET")
    send(client, t, envelopes)
    [issue] = issues_of(client, t.project_id)
    assert issue.variant == "custom-fingerprint"


def test_sessions_attachments_feedback_and_client_reports(client, tenant_factory):
    t = tenant_factory("extras")
    rt = client.app.state.runtime
    with sdk(release="mobile@3.1", environment="prod") as envelopes:
        sentry_sdk.start_session()
        sentry_sdk.get_isolation_scope().add_attachment(bytes=b"line1\nline2\n", filename="log.txt")
        event_id = sentry_sdk.capture_message("with attachment")
        sentry_sdk.end_session()
    send(client, t, envelopes)
    att = rt.store.rows("SELECT event_id, filename, size, blob_key FROM attachments "
                        "WHERE project_id = {p:UInt64}", {"p": t.project_id})
    assert att and att[0]["event_id"] == event_id and att[0]["filename"] == "log.txt"
    assert rt.blobs.get(att[0]["blob_key"]) == b"line1\nline2\n"
    sessions = rt.store.rows("SELECT release, environment, status FROM sessions "
                             "WHERE project_id = {p:UInt64}", {"p": t.project_id})
    assert {(r["release"], r["environment"]) for r in sessions} == {("mobile@3.1", "prod")}
    feedback = (b'{"event_id":"%s"}\n{"type":"user_report"}\n' % event_id.encode()
                + orjson.dumps({"event_id": event_id, "name": "Ann", "email": "a@x.io",
                                "comments": "It broke when I paid"}) + b"\n")
    report = (b'{}\n{"type":"client_report"}\n'
              b'{"timestamp":1700000000,"discarded_events":[{"reason":"queue_overflow","category":"error","quantity":4}]}\n')
    assert [r.status_code for r in send(client, t, [feedback, report])] == [200, 200]
    fb = rt.store.rows("SELECT event_id, comments FROM feedback WHERE project_id = {p:UInt64}",
                       {"p": t.project_id})
    assert fb == [{"event_id": event_id, "comments": "It broke when I paid"}]
    outcomes = rt.store.rows("SELECT outcome, reason, quantity FROM outcomes WHERE project_id = {p:UInt64}",
                             {"p": t.project_id})
    assert {"outcome": "client_discard", "reason": "queue_overflow", "quantity": 4} in outcomes


def test_project_rate_limit_answers_429_with_sentry_headers(client, tenant_factory):
    t = tenant_factory("quota")
    rt = client.app.state.runtime
    with rt.db.session() as s:
        s.add(ErrorSettings(project_id=t.project_id, rate_limit_per_minute=5, rate_limit_burst=0))
    with sdk() as envelopes:
        for i in range(8):
            sentry_sdk.capture_message(f"event {i}")
    replies = send(client, t, envelopes)
    assert [r.status_code for r in replies] == [200] * 5 + [429] * 3
    limited = replies[-1]
    assert limited.headers["X-Sentry-Rate-Limits"].endswith(":error:project:quota_exceeded")
    assert int(limited.headers["Retry-After"]) >= 1
    assert len(events_of(client, t.project_id)) == 5
    rows = rt.store.rows("SELECT sum(quantity) AS n FROM outcomes WHERE project_id = {p:UInt64} "
                         "AND outcome = 'rate_limited'", {"p": t.project_id})
    assert rows[0]["n"] == 3


def test_transactions_land_in_spans_and_transactions(client, tenant_factory):
    t = tenant_factory("perf")
    rt = client.app.state.runtime
    with sdk(release="api@2", environment="prod", traces_sample_rate=1.0) as envelopes:
        sentry_sdk.set_user({"id": "u-7"})
        with sentry_sdk.start_transaction(op="http.server", name="GET /orders/{id}") as tx:
            with sentry_sdk.start_span(op="db.query", name="SELECT * FROM orders WHERE password = 'x'"):
                time.sleep(0.01)
            with sentry_sdk.start_span(op="http.client", name="GET https://payments.example/charge"):
                pass
            tx.set_http_status(500)
    assert [r.status_code for r in send(client, t, envelopes)] == [200] * len(envelopes)
    [summary] = rt.store.rows(
        "SELECT name, op, duration_ms, status, user_key, release, environment, trace_id, span_id "
        "FROM transactions WHERE project_id = {p:UInt64}", {"p": t.project_id})
    assert (summary["name"], summary["op"], summary["status"]) == \
        ("GET /orders/{id}", "http.server", "internal_error")
    assert summary["duration_ms"] >= 10 and summary["user_key"] == "id:u-7"
    assert (summary["release"], summary["environment"]) == ("api@2", "prod")
    spans = rt.store.rows(
        "SELECT span_id, parent_span_id, name, kind, status_code, source FROM spans "
        "WHERE project_id = {p:UInt64} AND trace_id = {t:String} ORDER BY start",
        {"p": t.project_id, "t": summary["trace_id"]})
    assert len(spans) == 3 and {s["source"] for s in spans} == {"sentry"}
    root = spans[0]
    assert root["span_id"] == summary["span_id"] and root["kind"] == 2 and root["status_code"] == 2
    assert {s["parent_span_id"] for s in spans[1:]} == {root["span_id"]}
    assert [s["kind"] for s in spans[1:]] == [3, 3]


def test_streamed_span_v2_items(client, tenant_factory):
    """What streaming SDKs (e.g. @sentry/browser 11) send instead of transactions."""
    t = tenant_factory("spanv2")
    rt = client.app.state.runtime
    now = time.time()
    payload = {"items": [
        {"trace_id": "a" * 32, "span_id": "b" * 16, "name": "/checkout", "status": "ok",
         "is_segment": True, "start_timestamp": now - 1.2, "end_timestamp": now,
         "attributes": {"sentry.op": {"type": "string", "value": "pageload"},
                        "sentry.release": {"type": "string", "value": "web@9"},
                        "sentry.environment": {"type": "string", "value": "prod"},
                        "user.id": {"type": "string", "value": "42"}}},
        {"trace_id": "a" * 32, "span_id": "c" * 16, "parent_span_id": "b" * 16,
         "name": "GET /api/cart", "status": "error", "start_timestamp": now - 1.0,
         "end_timestamp": now - 0.5,
         "attributes": {"sentry.op": {"type": "string", "value": "http.client"},
                        "http.response.status_code": {"type": "integer", "value": 502}}},
    ]}
    body = (b'{}\n{"type":"span","item_count":2,"content_type":"application/vnd.sentry.items.span.v2+json"}\n'
            + orjson.dumps(payload) + b"\n")
    assert send(client, t, [body])[0].status_code == 200
    [tx] = rt.store.rows("SELECT name, op, release, environment, user_key, duration_ms FROM transactions "
                         "WHERE project_id = {p:UInt64}", {"p": t.project_id})
    assert (tx["name"], tx["op"], tx["release"], tx["environment"], tx["user_key"]) == \
        ("/checkout", "pageload", "web@9", "prod", "id:42")
    assert 1100 < tx["duration_ms"] < 1300
    spans = rt.store.rows("SELECT span_id, kind, status_code, http_status_code FROM spans "
                          "WHERE project_id = {p:UInt64} ORDER BY start", {"p": t.project_id})
    assert [(s["kind"], s["status_code"], s["http_status_code"]) for s in spans] == [(1, 0, 0), (3, 2, 502)]
