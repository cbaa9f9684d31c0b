import pytest

from spyglass.errors.grouping import SimilarityIndex, features_text, group_event
from spyglass.errors.grouping.embedders import BackendUnavailable


def site(type_, value, module, function, caller="handle"):
    def frame(module, function):
        return {"module": module, "function": function, "in_app": True, "lineno": 1}

    return {"platform": "python", "exception": {"values": [{
        "type": type_, "value": value,
        "stacktrace": {"frames": [frame("shop.web", "dispatch"), frame(module, caller), frame(module, function)]},
    }]}}


ISSUES = {
    1: site("KeyError", "'order 12'", "shop.orders", "load_order"),
    2: site("ValueError", "invalid amount '3x'", "shop.billing", "parse_amount", "charge"),
    3: site("ZeroDivisionError", "division by zero", "shop.reports", "monthly"),
    4: site("PermissionError", "user 7 may not open /admin", "shop.users", "admin_only"),
    5: {"message": "Nightly sync finished with 3 failures out of 100 records"},
}


@pytest.fixture
def index():
    index = SimilarityIndex()
    for issue, event in ISSUES.items():
        index.add(issue, event)
    return index


def test_nearest_finds_the_issue_of_a_variant(index):
    # Same crash site, reached from another caller: another hash, the same issue.
    variant = site("ValueError", "invalid amount '99k'", "shop.billing", "parse_amount", "refund")
    assert group_event(variant).hash != group_event(ISSUES[2]).hash
    best, score = index.nearest(variant, k=3)[0]
    assert best == 2 and score >= index.merge_threshold
    message = {"message": "Nightly sync finished with 17 failures out of 52000 records"}
    assert index.nearest(message, k=1)[0][0] == 5


def test_unrelated_event_stays_below_the_threshold(index):
    other = site("TimeoutError", "smtp did not answer", "shop.mail", "send")
    hits = index.nearest(other)
    assert not hits or hits[0][1] < index.merge_threshold


def test_nearest_orders_and_excludes(index):
    hits = index.nearest(ISSUES[1], k=5)
    assert hits[0] == (1, pytest.approx(1.0))
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert 1 not in [i for i, _ in index.nearest(ISSUES[1], exclude=1)]


def test_remove_and_exemplars(index):
    assert index.add(1, ISSUES[1]) is False  # identical exemplar
    index.remove(2)
    assert 2 not in index and len(index) == 4
    assert all(i != 2 for i, _ in index.nearest(ISSUES[2]))
    small = SimilarityIndex(max_exemplars=1)
    assert small.add(9, ISSUES[1]) and not small.add(9, ISSUES[3])


def test_round_trip(index):
    index.remove(3)
    restored = SimilarityIndex.from_bytes(index.to_bytes())
    assert restored.merge_threshold == index.merge_threshold
    assert len(restored) == len(index)
    for event in ISSUES.values():
        before, after = index.nearest(event), restored.nearest(event)
        assert [i for i, _ in after] == [i for i, _ in before]
        assert [s for _, s in after] == pytest.approx([s for _, s in before])
    restored.add(3, ISSUES[3])
    assert restored.nearest(ISSUES[3], k=1)[0][0] == 3


def test_features_text_is_parameterized():
    text = features_text(ISSUES[2])
    assert text.splitlines()[0] == "ValueError: invalid amount '3x'"
    assert "at shop.billing in parse_amount" in text
    assert features_text(ISSUES[5]) == "Nightly sync finished with <int> failures out of <int> records"


def test_unknown_backend():
    with pytest.raises(BackendUnavailable):
        SimilarityIndex("word2vec")


def test_optional_wordllama_backend():
    pytest.importorskip("wordllama")
    index = SimilarityIndex("wordllama")
    for issue, event in ISSUES.items():
        index.add(issue, event)
    variant = site("ValueError", "invalid amount '99k'", "shop.billing", "parse_amount", "refund")
    assert index.nearest(variant, k=1)[0][0] == 2
    assert SimilarityIndex.from_bytes(index.to_bytes()).nearest(variant, k=1)[0][0] == 2
