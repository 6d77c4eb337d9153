"""The compiled loops of a listed dictionary step give what torch's dense products give."""

from __future__ import annotations

import pytest
import torch

from aekit.sae import native
from aekit.sae.kernels import decode_entries, listed_linear, listed_values, positive_positions

compiled = pytest.mark.skipif(not native.available(), reason=f"no compiled loops here: {native.reason}")


def _grouped_entries(rows: int, width: int, share: float, generator: torch.Generator) -> torch.Tensor:
    """Flat positions (n,) grouped by row, in random order within each row, some rows empty."""
    mask = torch.rand(rows, width, generator=generator) < share
    mask[::5] = False  # empty rows
    per_row = []
    for r in range(rows):
        columns = mask[r].nonzero().view(-1)
        per_row.append(r * width + columns[torch.randperm(len(columns), generator=generator)])
    return torch.cat(per_row)


def _dense(entries: torch.Tensor, values: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    return torch.zeros(rows * width).index_put_((entries,), values).view(rows, width)


@compiled
@pytest.mark.parametrize("dim", [16, 64, 80, 128, 200])
def test_compiled_loops_equal_dense_products(dim):
    generator = torch.Generator().manual_seed(dim)
    rows, width = 33, 70
    entries = _grouped_entries(rows, width, 0.2, generator)
    weights = torch.randn(len(entries), generator=generator)
    code = _dense(entries, weights, rows, width)  # (B, K)
    table = torch.randn(width, dim, generator=generator)  # by latent
    examples = torch.randn(rows, dim, generator=generator)  # by row
    start = torch.randn(rows, dim, generator=generator)

    out = native.columns_into_rows(entries, weights, width, table, start.clone())
    torch.testing.assert_close(out, start + code @ table)

    into, sums = torch.ones(width, dim), torch.ones(width)
    dots = native.rows_with_columns(entries, width, examples, table, weights, into, sums)
    torch.testing.assert_close(dots, (examples @ table.T).view(-1)[entries])
    torch.testing.assert_close(into, 1 + code.T @ examples)
    torch.testing.assert_close(sums, 1 + code.sum(0))

    alone = native.rows_with_columns(entries, width, examples, table)  # the dots alone
    torch.testing.assert_close(alone, dots, rtol=0, atol=0)
    only_sums = torch.zeros(width)
    assert native.rows_with_columns(entries, width, None, weights=weights, sums=only_sums) is None
    torch.testing.assert_close(only_sums, code.sum(0))


@compiled
def test_compiled_loops_take_empty_lists_and_refuse_other_tensors():
    entries = torch.zeros(0, dtype=torch.int64)
    empty = torch.zeros(0)
    out = native.columns_into_rows(entries, empty, 4, torch.ones(4, 3), torch.zeros(2, 3))
    assert torch.equal(out, torch.zeros(2, 3))
    assert native.rows_with_columns(entries, 4, torch.ones(2, 3), torch.ones(4, 3)).shape == (0,)
    with pytest.raises(ValueError, match="contiguous float32 CPU"):
        native.columns_into_rows(entries, empty.double(), 4, torch.ones(4, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="contiguous float32 CPU"):
        native.rows_with_columns(entries, 4, torch.ones(3, 2).T, torch.ones(4, 3))
    with pytest.raises(ValueError, match="needs weights"):
        native.rows_with_columns(entries, 4, torch.ones(2, 3), sums=torch.zeros(4))


@compiled
def test_compiled_loops_refuse_entries_outside_the_code():
    table = torch.ones(4, 3)
    for bad in ([8], [-1], [0, 9]):  # a (2, 4) code has positions 0..7
        entries, weights = torch.tensor(bad), torch.ones(len(bad))
        with pytest.raises(IndexError, match=r"outside the \(2, 4\) code"):
            native.columns_into_rows(entries, weights, 4, table, torch.zeros(2, 3))
        with pytest.raises(IndexError, match="outside the"):
            native.rows_with_columns(entries, 4, torch.ones(2, 3), table, weights, torch.zeros(4, 3))
    with pytest.raises(IndexError, match=r"outside the \(rows, 4\) code"):
        native.rows_with_columns(torch.tensor([-3]), 4, None, weights=torch.ones(1), sums=torch.zeros(4))


@compiled
@pytest.mark.parametrize("size", [1, 7, 8, 1023, 1024, 1025, 5000])
def test_list_nonzero_lists_positions_and_stops_past_the_limit(size):
    generator = torch.Generator().manual_seed(size)
    values = torch.randn(size, generator=generator).relu()
    values[::7] = -0.0  # listed too: its bits are not zero
    expected = values.view(torch.int32).nonzero().view(-1)
    assert torch.equal(native.list_nonzero(values, size), expected)
    assert torch.equal(native.list_nonzero(values, len(expected)), expected)  # exactly at the limit
    if len(expected):
        assert native.list_nonzero(values, len(expected) - 1) is None
    clean = values + 0.0  # -0.0 + 0.0 is +0.0
    assert torch.equal(positive_positions(clean, len(expected)), clean.nonzero().view(-1))


def test_positive_positions_limit_with_either_loops(listed_loops):
    z = torch.randn(40, 64, generator=torch.Generator().manual_seed(0)).relu()
    count = int((z > 0).sum())
    assert torch.equal(positive_positions(z, count), (z.view(-1) > 0).nonzero().view(-1))
    assert positive_positions(z, count - 1) is None


def test_listed_step_in_float32_equals_dense_products(listed_loops):
    """decode_entries and listed_values over listed_linear give the values and gradients of the
    dense products, in float32 (where the compiled loops run) as with torch's operators."""
    generator = torch.Generator().manual_seed(3)
    batch, dim, width = 24, 96, 50
    x = torch.randn(batch, dim, generator=generator, requires_grad=True)
    encoder = torch.randn(width, dim, generator=generator, requires_grad=True)
    bias = torch.randn(width, generator=generator, requires_grad=True)
    decoder = torch.randn(dim, width, generator=generator, requires_grad=True)
    upstream = torch.randn(batch, dim, generator=generator)

    def run(listed: bool):
        h = listed_linear(x, encoder, bias) if listed else torch.nn.functional.linear(x, encoder, bias)
        with torch.no_grad():
            entries = (h.detach().view(-1) > 1.0).nonzero().view(-1)  # grouped by row
        values = listed_values(h, entries) if listed else h.reshape(-1)[entries]
        z = torch.zeros(batch * width).index_put((entries,), values).view(batch, width)
        z.active_entries, z.active_values = entries, values
        out = decode_entries(z, entries, decoder) if listed else z @ decoder.T
        return out, torch.autograd.grad((out * upstream).sum(), [x, encoder, bias, decoder])

    ours, ours_grads = run(True)
    theirs, their_grads = run(False)
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(ours_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_without_a_compiler_the_loops_say_why(monkeypatch, tmp_path):
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_library", None)
    assert not native.available()
    assert "no-such-compiler" in native.reason
    assert not any((tmp_path / "kernels").glob("*"))  # nothing half-written left behind
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setenv("AEKIT_NATIVE", "0")
    assert not native.available() and native.reason == "AEKIT_NATIVE=0"
    assert not native.usable(torch.zeros(3))


@compiled
def test_the_library_is_built_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_library", None)
    assert native.available()
    built = list((tmp_path / "kernels").glob("listed-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(native, "_tried", False)
    assert native.available() and built[0].stat().st_mtime_ns == stamp  # read again, not rebuilt
