"""MBPP loader on a small file in the standard format."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.bench import mbpp
from app.bench.registry import get_benchmark
from app.core.errors import ConfigError

DATA = Path(__file__).parent / "data"


def test_loads_file_or_dir_and_finds_entry_points() -> None:
    bench = get_benchmark("mbpp")
    from_dir = bench.load(0, 0, data_dir=DATA)
    from_file = bench.load(0, 0, data_dir=DATA / "mbpp.jsonl")
    assert from_dir == from_file and len(from_dir) == 4
    specs = [ex.subtasks[0].code_spec for ex in from_dir]
    assert [s.entry_point for s in specs if s] == ["odd_product", "flip_words", "count_over", "common_items"]
    assert from_dir[2].subtasks[0].code_spec and from_dir[2].subtasks[0].code_spec.setup
    assert len(bench.load(2, 5, data_dir=DATA)) == 2


def test_reference_code_passes_and_wrong_code_partially_fails() -> None:
    bench = get_benchmark("mbpp")
    for ex in bench.load(0, 0, data_dir=DATA):
        ref = str(ex.metadata["reference_code"]).replace("\r\n", "\n")
        assert bench.score(ex, {"solve": f"```python\n{ref}\n```"}, code_eval=True)["solve"].score == 1.0
    first = bench.load(0, 0, data_dir=DATA)[0]
    wrong = bench.score(first, {"solve": "def odd_product(xs):\n    return 15"}, code_eval=True)["solve"]
    assert wrong.score == pytest.approx(1 / 3)


def test_missing_data_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mbpp, "_from_datasets", lambda: None)
    with pytest.raises(ConfigError, match="data_dir"):
        get_benchmark("mbpp").load(5, 0, data_dir=tmp_path / "nope")
    with pytest.raises(ConfigError, match="datasets"):
        get_benchmark("mbpp").load(5, 0)
    bad = tmp_path / "mbpp.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(ConfigError, match=r"mbpp\.jsonl:1"):
        get_benchmark("mbpp").load(5, 0, data_dir=tmp_path)
