"""The sparse arithmetic of a dictionary step gives what the dense products give."""

from __future__ import annotations

import pytest
import torch

import aekit
from aekit.sae.kernels import (
    DENSE_ABOVE,
    active_entries,
    batch_topk,
    by_column,
    decode_entries,
    list_entries,
    list_gradient,
    listed_linear,
    row_topk,
)


@pytest.mark.parametrize("width,k", [(512, 12), (2048, 100), (64, 3), (1000, 7), (40, 40), (256, 1)])
def test_row_topk_matches_torch_topk(width, k):
    h = torch.randn(50, width, generator=torch.Generator().manual_seed(width + k))
    values, index = row_topk(h, k)
    expected = h.topk(k, dim=1).values
    assert torch.equal(values, expected)
    assert torch.equal(h.gather(1, index), expected)  # indices may differ only between equal values


def test_row_topk_with_ties_and_infinities():
    h = torch.zeros(4, 256)
    h[0, 7] = 1.0
    h[1] = -torch.inf
    h[1, :5] = torch.arange(5.0)
    values, index = row_topk(h, 3)
    assert torch.equal(values, h.topk(3, dim=1).values)
    assert torch.equal(h.gather(1, index), values)


def test_row_topk_gradient_reaches_only_the_chosen_entries():
    h = torch.randn(6, 128, requires_grad=True)
    values, index = row_topk(h, 4)
    values.sum().backward()
    expected = torch.zeros(6, 128).scatter(1, index, 1.0)
    assert torch.equal(h.grad, expected)


def _selected_code(h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, index = row_topk(h, k)
    values = values.relu()
    return torch.zeros_like(h).scatter(1, index, values), active_entries(index, values, h.shape[1])


def test_decode_entries_equals_the_dense_product_and_its_gradients():
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(32, 48, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(10, 48, dtype=torch.float64, generator=generator, requires_grad=True)
    grad = torch.randn(32, 10, dtype=torch.float64, generator=generator)
    z, entries = _selected_code(h, 5)
    sparse = decode_entries(z, entries, weight)
    sparse_grads = torch.autograd.grad(sparse, [h, weight], grad)
    z, _ = _selected_code(h, 5)
    dense = z @ weight.T
    dense_grads = torch.autograd.grad(dense, [h, weight], grad)
    torch.testing.assert_close(sparse, dense)
    for ours, theirs in zip(sparse_grads, dense_grads, strict=True):
        torch.testing.assert_close(ours, theirs)
    # finite differences on the dictionary itself
    fixed_z, fixed_entries = z.detach(), entries
    weight = weight.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda w: decode_entries(fixed_z, fixed_entries, w), (weight,))


def test_entries_skip_selected_zeros_and_sort_a_batch_selection():
    index = torch.tensor([[3, 1], [0, 2]])
    values = torch.tensor([[0.5, 0.0], [2.0, 1.0]])
    assert active_entries(index, values, 4).tolist() == [3, 4, 6]
    flat_index, flat_values = torch.tensor([6, 3, 4, 1]), torch.tensor([1.0, 0.5, 2.0, 0.0])
    assert active_entries(flat_index, flat_values, 4).tolist() == [3, 4, 6]
    z = list_entries(torch.zeros(2, 4), flat_index, flat_values)  # the values follow the sorted positions
    assert z.active_entries.tolist() == [3, 4, 6] and z.active_values.tolist() == [0.5, 2.0, 1.0]


@pytest.mark.parametrize("near", [None, "exact", 1e6, -1e6, 0.0])
def test_batch_topk_matches_torch_topk_whatever_the_guess(near):
    """A guess of the cut that is right, too high (too few above it) or far too low (too many)
    gives the same selection; the positions come out ascending."""
    flat = torch.randn(4000, generator=torch.Generator().manual_seed(3), requires_grad=True)
    n = 120
    expected = flat.detach().topk(n).values
    guess = float(expected[-1]) if near == "exact" else near
    values, index = batch_topk(flat, n, guess)
    assert torch.equal(values.detach().sort(descending=True).values, expected)
    assert torch.equal(flat.detach()[index], values.detach())
    assert bool((index[1:] > index[:-1]).all())
    values.sum().backward()
    assert torch.equal(flat.grad, torch.zeros(4000).index_fill(0, index, 1.0))


@pytest.mark.parametrize("count", [100, 9000, 40000])
def test_by_column_groups_the_entries_by_latent(count):
    """The order is a permutation of the entries that sorts their latents (short, padded and long
    lists), and each latent's run starts where the counts before it end."""
    columns = torch.randint(0, 300, (count,), generator=torch.Generator().manual_seed(count))
    order, starts = by_column(columns, 300)
    assert torch.equal(order.sort().values, torch.arange(count))
    assert torch.equal(columns[order], columns.sort().values)
    counts = torch.bincount(columns, minlength=300)
    assert torch.equal(starts, counts.cumsum(0) - counts)


@pytest.mark.parametrize("listed", ["exact", "missing one", "none"])
def test_listed_linear_gradients_equal_the_dense_ones(listed):
    """The weights' gradient formed at the listed entries equals F.linear's; a list that misses
    an entry whose gradient is non-zero falls back to the dense product, so it is exact too."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(30, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(100, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(100, dtype=torch.float64, generator=generator, requires_grad=True)
    h = listed_linear(x, weight, bias)
    torch.testing.assert_close(h, torch.nn.functional.linear(x, weight, bias))
    values, index = row_topk(h, 3)  # the gradient reaches 3 entries per row
    entries = active_entries(index, values.detach().abs() + 1, 100)  # all 90 of them
    if listed == "missing one":
        entries = entries[1:]
    if listed != "none":
        list_gradient(h, entries)
    upstream = torch.randn(30, 3, dtype=torch.float64, generator=generator)
    ours = torch.autograd.grad(values, [x, weight, bias], upstream)
    values, _ = row_topk(torch.nn.functional.linear(x, weight, bias), 3)
    theirs = torch.autograd.grad(values, [x, weight, bias], upstream)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("family", ["sae-topk", "sae-batchtopk", "sae-jumprelu", "sae-l1"])
def test_dictionary_loss_and_gradients_match_the_dense_decoder(family):
    """The decoder reads the entries a latent lists, with the values the latent hands it; dropping
    them (dense products throughout) changes neither the loss nor any gradient, the thresholds'
    straight-through gradients and AuxK's included."""
    torch.manual_seed(0)
    options = {
        "sae-jumprelu": {"l0_weight": 0.1, "threshold": 2.6, "bandwidth": 0.6},
        "sae-l1": {"l1_weight": 0.1, "encoder_scale": 1.0},
    }.get(family, {"k": 4})
    model = aekit.make_model(family, (16,), 256, **options)
    if family == "sae-l1":  # a negative bias makes the ReLU code sparse enough for the listed entries
        with torch.no_grad():
            model.encoder.bias.fill_(-2.2)
    x = torch.randn(40, 16)
    model.fit_data_statistics(x)
    model.train()

    def loss_and_grads(strip: bool):
        latent, encoder = model.latent, model.encoder
        original, original_encoder = latent.activate, encoder.forward
        if strip:  # the same h and code without their lists: everything dense
            encoder.forward = lambda x: original_encoder(x) * 1.0
            latent.activate = lambda h: original(h) * 1.0
        try:
            torch.manual_seed(1)
            out = model.loss(x)
            grads = torch.autograd.grad(out.total, [p for p in model.parameters() if p.requires_grad])
        finally:
            latent.activate, encoder.forward = original, original_encoder
        return out, grads

    with torch.no_grad():
        code = model.latent.activate(model.encoder(x))
    assert 0 < len(code.active_entries) <= DENSE_ABOVE * code.numel()  # the sparse path is the one tested
    if family != "sae-l1":  # the latent hands the decoder its values directly
        torch.testing.assert_close(code.active_values, code.reshape(-1)[code.active_entries], rtol=0, atol=1e-6)
    if family == "sae-jumprelu":  # and the L0 penalty its count, both at the entries within reach
        assert code.active_steps.sum() == (code != 0).sum()
    if family == "sae-topk":  # the latents silent on x are dead: AuxK takes part too
        silent = (code == 0).all(0)
        assert silent.any()
        model.latent.since_fired[silent] = 10**9
    sparse, sparse_grads = loss_and_grads(False)
    dense, dense_grads = loss_and_grads(True)
    if family == "sae-topk":
        assert float(sparse.terms["auxk"].detach()) > 0
    torch.testing.assert_close(sparse.total, dense.total)
    for ours, theirs in zip(sparse_grads, dense_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
