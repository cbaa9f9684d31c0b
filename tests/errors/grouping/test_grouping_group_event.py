import re

from spyglass.errors.grouping import GroupingConfig, group_event, normalize_js_path


def test_shape_of_a_grouping(checkout_error):
    g = group_event(checkout_error)
    assert re.fullmatch(r"[0-9a-f]{32}", g.hash)
    assert g.variant == "app-stacktrace"
    assert g.components == [
        "type: ValueError",
        "frame: shop.views in checkout",
        "frame: shop.billing in parse_amount",
    ]
    assert g.title == "ValueError: invalid amount '12x' for order 1234"
    assert g.culprit == "shop.billing in parse_amount"
    assert g.metadata == {"type": "ValueError", "value": "invalid amount '12x' for order 1234",
                          "filename": "shop/billing.py", "function": "parse_amount"}


def test_line_numbers_values_and_system_frames_do_not_change_the_hash(checkout_error, clone, frame):
    other = clone(checkout_error)
    exc = other["exception"]["values"][0]
    exc["value"] = "invalid amount 'abc' for order 99"
    for f in exc["stacktrace"]["frames"]:
        f["lineno"] += 7
        f["context_line"] = "changed"
    exc["stacktrace"]["frames"].insert(0, frame("gunicorn.workers", "run", in_app=False))
    assert group_event(other).hash == group_event(checkout_error).hash


def test_in_app_frames_matter(checkout_error, clone):
    other = clone(checkout_error)
    other["exception"]["values"][0]["stacktrace"]["frames"][1]["function"] = "checkout_v2"
    assert group_event(other).hash != group_event(checkout_error).hash


def test_falls_back_to_all_frames_when_none_is_in_app(frame, exception_event):
    event = exception_event("KeyError", "'x'", [frame("lib.a", "f", in_app=False),
                                                frame("lib.b", "g", in_app=None)])
    g = group_event(event)
    assert g.variant == "system-stacktrace"
    assert g.components == ["type: KeyError", "frame: lib.a in f", "frame: lib.b in g"]


def test_recursion_depth_does_not_change_the_hash(frame, exception_event):
    def event(depth):
        frames = [frame("app.tree", "main")] + [frame("app.tree", "walk", 5)] * depth
        return exception_event("KeyError", "'c9'", frames)

    assert len({group_event(event(d)).hash for d in (1, 2, 7, 50)}) == 1
    assert group_event(event(3)).components == ["type: KeyError", "frame: app.tree in main",
                                                "frame: app.tree in walk"]


def test_chained_exceptions_count_every_type(frame):
    cause = {"type": "ConnectionResetError", "value": "reset",
             "stacktrace": {"frames": [frame("shop.db", "insert")]}}
    outer = {"type": "DatabaseError", "value": "insert failed for id=7",
             "stacktrace": {"frames": [frame("shop.orders", "save")]}}
    event = {"exception": {"values": [cause, outer]}, "platform": "python"}
    g = group_event(event)
    assert g.components == ["type: ConnectionResetError", "frame: shop.db in insert",
                            "type: DatabaseError", "frame: shop.orders in save"]
    assert g.title.startswith("DatabaseError: ")
    alone = {"exception": {"values": [outer]}, "platform": "python"}
    assert group_event(alone).hash != g.hash


def test_exception_without_frames_groups_by_type_and_parameterized_value():
    a = {"exception": {"values": [{"type": "TimeoutError", "value": "no answer from 10.0.0.1 after 30s"}]}}
    b = {"exception": {"values": [{"type": "TimeoutError", "value": "no answer from 10.0.0.7 after 5s"}]}}
    assert group_event(a).variant == "exception"
    assert group_event(a).hash == group_event(b).hash
    assert group_event(a).components == ["type: TimeoutError", "value: no answer from <ip> after <duration>"]


def test_message_params_do_not_change_the_hash():
    def log(*params):
        return {"logger": "shop.jobs", "level": "error",
                "logentry": {"message": "job %s failed after %d tries", "params": list(params),
                             "formatted": "job %s failed after %d tries" % params}}

    assert group_event(log("sync", 3)).hash == group_event(log("export", 5)).hash
    assert group_event(log("sync", 3)).title == "job sync failed after 3 tries"
    formatted = [{"message": f"Payment {n} declined for {m}"} for n, m in [(12, "a@x.io"), (9, "b@y.org")]]
    assert group_event(formatted[0]).hash == group_event(formatted[1]).hash
    assert group_event(formatted[0]).variant == "message"


def test_fallback_and_junk_never_raise():
    assert group_event({}).variant == "fallback"
    for junk in [None, [], {"exception": 3}, {"exception": {"values": [None, {"stacktrace": 5}]}},
                 {"exception": [{"type": 1, "stacktrace": {"frames": [None, {"in_app": "yes"}]}}]},
                 {"logentry": "x", "message": {"formatted": "hi"}}, {"fingerprint": "nope"}]:
        assert len(group_event(junk).hash) == 32  # type: ignore[arg-type]


def test_client_fingerprint_and_default_expansion(checkout_error, clone):
    default = group_event(checkout_error)
    custom = clone(checkout_error)
    custom["fingerprint"] = ["{{ default }}"]
    assert group_event(custom).hash == default.hash
    assert group_event(custom).variant == "app-stacktrace"

    custom["fingerprint"] = ["checkout", "{{ default }}"]
    g = group_event(custom)
    assert g.variant == "custom-fingerprint"
    assert g.hash != default.hash
    assert g.components[1:] == ["fingerprint: checkout"] + default.components

    custom["fingerprint"] = ["payments", "{{ transaction }}"]
    g = group_event(custom)
    assert g.components[1:] == ["fingerprint: payments", "fingerprint: /checkout"]
    other = clone(custom)
    other["exception"]["values"][0]["type"] = "KeyError"
    assert group_event(other).hash == g.hash  # the fingerprint replaces the default grouping


def test_fingerprint_rules_come_before_the_client_fingerprint(checkout_error, clone, frame, exception_event):
    config = GroupingConfig.from_text(
        'error.type:ValueError stack.function:parse_* stack.module:shop.* -> bad-amount title="Bad amount in {{ function }}"\n'
        'message:"*timeout*" -> timeouts, {{ default }}'
    )
    event = clone(checkout_error)
    event["fingerprint"] = ["client-says"]
    g = group_event(event, config)
    assert g.variant == "custom-fingerprint"
    assert g.components[0] == ('fingerprint rule (line 1): error.type:ValueError stack.function:parse_* '
                               'stack.module:shop.* -> bad-amount title="Bad amount in {{ function }}"')
    assert g.components[1:] == ["fingerprint: bad-amount"]
    assert g.title == "Bad amount in parse_amount"

    # Frame matchers must hold on one frame: no frame is both shop.* and parse_x here.
    split = clone(checkout_error)
    split["exception"]["values"][0]["stacktrace"]["frames"][2]["module"] = "lib.money"
    assert group_event(split, config).variant == "app-stacktrace"

    timeout = exception_event("OSError", "read TIMEOUT on socket", [frame("shop.net", "read")])
    g = group_event(timeout, config)
    assert g.components[1:] == ["fingerprint: timeouts", "type: OSError", "frame: shop.net in read"]


def test_stacktrace_rules_mark_frames(checkout_error):
    config = GroupingConfig.from_text(stacktrace_rules="stack.module:shop.views -app\nstack.module:decimal +app")
    assert group_event(checkout_error, config).components == [
        "type: ValueError", "frame: shop.billing in parse_amount", "frame: decimal in __new__"]
    config = GroupingConfig.from_text(stacktrace_rules="stack.function:parse_amount -group")
    assert group_event(checkout_error, config).components == ["type: ValueError", "frame: shop.views in checkout"]
    config = GroupingConfig.from_text(stacktrace_rules="stack.function:checkout v-group ^-group")
    assert group_event(checkout_error, config).components == ["type: ValueError", "frame: shop.views in checkout"]
    config = GroupingConfig.from_text(stacktrace_rules="app:no +app\nfamily:other max-frames=2")
    assert group_event(checkout_error, config).components == [
        "type: ValueError", "frame: shop.billing in parse_amount", "frame: decimal in __new__"]
    config = GroupingConfig.from_text(stacktrace_rules="error.type:KeyError stack.module:shop.* -app")
    assert group_event(checkout_error, config).components == group_event(checkout_error).components


def test_javascript_bundle_names_and_node_modules():
    def js_event(bundle, host, lineno):
        return {
            "platform": "javascript",
            "exception": {"values": [{"type": "TypeError", "value": "x is undefined", "stacktrace": {"frames": [
                {"abs_path": f"{host}/node_modules/react-dom/cjs/react-dom.production.min.js", "function": "Sa", "lineno": 1},
                {"abs_path": f"{host}/static/js/{bundle}?v={lineno}", "filename": f"/static/js/{bundle}", "function": "onClick", "lineno": lineno, "colno": 3},
            ]}}]},
        }

    a = group_event(js_event("main.8e2f1a3b.chunk.js", "https://cdn.example.com", 1))
    b = group_event(js_event("main.77c0d9e1.chunk.js", "https://preview-42.example.app", 9))
    assert a.hash == b.hash
    assert a.components == ["type: TypeError", "frame: static/js/main.chunk.js in onClick"]
    config = GroupingConfig.from_text(stacktrace_rules="family:javascript stack.abs_path:**/static/js/** -app")
    assert group_event(js_event("main.1234abcd.js", "https://x", 1), config).variant == "system-stacktrace"


def test_normalize_js_path():
    assert normalize_js_path("https://cdn.example.com/static/js/main.8e2f1a3b.chunk.js?v=3") == "static/js/main.chunk.js"
    assert normalize_js_path("webpack:///./src/app.js") == "src/app.js"
    assert normalize_js_path("/assets/index-BfZaXyKd.js") == "assets/index.js"
    assert normalize_js_path("/assets/index-Bf9a2Kd1.js#x") == "assets/index.js"
    assert normalize_js_path("http://localhost:3000/lodash-4.17.21.min.js") == "lodash.min.js"
    assert normalize_js_path("/static/3f2a1b9c/js/app.js") == "static/js/app.js"
    assert normalize_js_path("/x/react-dom.production.min.js") == "x/react-dom.production.min.js"
    assert normalize_js_path("/components/my-DataGrid.js") == "components/my-DataGrid.js"
