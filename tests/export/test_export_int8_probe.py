"""``--activations auto``: the faster of int8 and uint8 activations on this machine,
measured once and cached like the precision probe."""

from __future__ import annotations

import json

import pytest

from rsdistill.export import int8_probe
from rsdistill.export.quantize import QuantizeRequest

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("int8_ms, uint8_ms, chosen", [(1.3, 1.0, "uint8"), (1.0, 1.3, "int8"),
                                                       (1.05, 1.0, "int8")])
def test_the_faster_type_wins_and_is_measured_once(int8_ms, uint8_ms, chosen, tmp_path,
                                                   monkeypatch):
    calls = []

    def fake_measure():
        calls.append(1)
        return {"int8": int8_ms, "uint8": uint8_ms}

    monkeypatch.setattr(int8_probe, "measure_activation_speed", fake_measure)
    first = int8_probe.choose_activations(tmp_path)
    assert first[0] == chosen and f"{uint8_ms / int8_ms:.2f}x the time" in first[1]
    assert int8_probe.choose_activations(tmp_path) == first and len(calls) == 1
    cached = json.loads((tmp_path / int8_probe.PROBE_FILE).read_text())
    assert [entry["activations"] for entry in cached.values()] == [chosen]


def test_a_read_only_cache_costs_only_a_new_probe(tmp_path, monkeypatch):
    monkeypatch.setattr(int8_probe, "measure_activation_speed", lambda: {"int8": 2.0, "uint8": 1.0})
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert int8_probe.choose_activations(blocked / "sub")[0] == "uint8"


@pytest.mark.slow
def test_the_real_probe_times_both_graphs():
    ms = int8_probe.measure_activation_speed()
    assert set(ms) == {"int8", "uint8"} and all(v > 0 for v in ms.values())


def test_auto_is_the_default_and_other_types_are_checked():
    assert QuantizeRequest().activations == "auto"
    with pytest.raises(Exception, match="unknown activation type"):
        QuantizeRequest(activations="int4")
