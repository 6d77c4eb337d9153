"""The lecture gallery: every example runs at its tiny size and its own claims hold there; the full run
recorded for the documentation is complete, its claims hold and are the ones the code states now."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from .conftest import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GALLERY = ROOT / "docs" / "gallery"
NAMES = sorted(path.stem for path in EXAMPLES.glob("[0-9][0-9]_*.py"))


def load_example(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))  # the examples import their shared helpers as a sibling module
    spec = importlib.util.spec_from_file_location(f"gallery_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gallery_has_the_lecture_examples():
    assert [name[:2] for name in NAMES] == [f"{i:02d}" for i in range(1, 18)], NAMES


@pytest.mark.parametrize("name", NAMES)
def test_example_claims_hold_at_tiny_size(name, tmp_path):
    module = load_example(name)
    data_dir = None
    if hasattr(module, "FOLDERS"):  # an example on real photos
        data_dir = shared_data_dir()
        if data_dir is None or not all((data_dir / folder).is_dir() for folder in module.FOLDERS):
            pytest.skip(f"{name} needs the photo folders {module.FOLDERS} under AEKIT_DATA_DIR")
    record = module.main(size="tiny", out_dir=tmp_path, data_dir=data_dir)
    exempt = getattr(module, "TINY_EXEMPT", set())  # claims that need the full size, said in the docstring
    failed = [claim for claim, holds in record["claims"].items() if not holds and claim not in exempt]
    assert not failed, f"{name} at tiny size: {failed}; numbers {record['numbers']}"
    assert set(record["claims"]) - set(exempt), "an example must check at least one claim at tiny size"
    assert (tmp_path / f"{name}.png").stat().st_size > 0
    written = json.loads((tmp_path / f"{name}.json").read_text())
    assert written["numbers"] == record["numbers"] and written["size"] == "tiny"


@pytest.mark.parametrize("name", NAMES)
def test_recorded_full_run_backs_the_page(name):
    result, figure = GALLERY / f"{name}.json", GALLERY / f"{name}.png"
    assert result.is_file() and figure.is_file(), f"run `python examples/{name}.py` to record its results"
    record = json.loads(result.read_text())
    assert record["size"] == "full"
    assert set(record["numbers"]) == set(record["labels"])
    module = load_example(name)
    assert module.claims(record["numbers"]) == record["claims"], "the claims changed since the recorded run"
    assert all(record["claims"].values()), record["claims"]
    assert figure.stat().st_size < 500_000
