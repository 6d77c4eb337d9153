"""The likelihood benchmark's record keeps how every entry was made when a run is resumed."""

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    if str(BENCH) not in sys.path:  # bench scripts import their shared helpers from bench/common.py
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resumed_record_keeps_the_first_runs_settings():
    runs = _load("vae_likelihood")._runs
    assert runs({}) == []
    old = {
        "date": "2026-11-24",
        "threads": 1,
        "settings": {"datasets": "mnist,fashion-mnist", "epochs": "mnist=100,fashion-mnist=10"},
        "results": {"mnist": {"data": "note", "aekit-vae": {}, "pythae-vae": {}}, "fashion-mnist": {"aekit-vae": {}}},
    }
    first = runs(old)
    assert len(first) == 1
    assert first[0]["settings"] == old["settings"] and first[0]["date"] == "2026-11-24"
    assert first[0]["entries"] == ["mnist/aekit-vae", "mnist/pythae-vae", "fashion-mnist/aekit-vae"]
    # a record that already lists its runs is returned as it is
    assert runs({**old, "runs": first}) == first
