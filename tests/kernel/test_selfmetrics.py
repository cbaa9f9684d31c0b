from spyglass.errors.items import metric_kind
from spyglass.kernel import selfmetrics


def test_child_is_the_labelled_metric_remembered():
    first = selfmetrics.child(selfmetrics.INGEST_ITEMS, "envelope", "event")
    assert first is selfmetrics.child(selfmetrics.INGEST_ITEMS, "envelope", "event")
    before = selfmetrics.INGEST_ITEMS.labels("envelope", "event")._value.get()
    first.inc(2)
    assert selfmetrics.INGEST_ITEMS.labels("envelope", "event")._value.get() == before + 2


def test_clients_cannot_mint_label_values():
    # Item types and HTTP methods come from clients: unknown ones share one label.
    assert metric_kind("transaction") == "transaction"
    assert metric_kind("made_up_type_1") == "other"
    assert metric_kind("x" * 100) == "other"
    from spyglass.app import METHODS

    assert "GET" in METHODS and "BREW" not in METHODS
