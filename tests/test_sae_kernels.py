"""The sparse arithmetic of a dictionary step gives what the dense products give."""

from __future__ import annotations

import pytest
import torch

import aekit
from aekit.sae.kernels import (
    active_entries,
    batch_topk,
    by_column,
    decode_entries,
    dense_above,
    listed_code,
    listed_linear,
    listed_values,
    positive_positions,
    row_topk,
    selected_code,
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
    h = torch.tensor([[-1.0, 0.0, 3.0, 0.5], [2.0, -4.0, 1.0, 7.0]], requires_grad=True)
    z = selected_code(h, flat_index)  # 1 and 7 are not chosen, 6 is: the values follow the sorted positions
    assert z.active_entries.tolist() == [3, 4, 6] and z.active_values.tolist() == [0.5, 2.0, 1.0]
    assert torch.equal(z, torch.tensor([[0.0, 0.0, 0.0, 0.5], [2.0, 0.0, 1.0, 0.0]]))
    z.sum().backward()  # through the dense code too
    assert torch.equal(h.grad, torch.tensor([[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]]))
    chosen = selected_code(h, index.flip(1))  # columns per row: 0.0 at (0, 1) is not positive
    assert chosen.active_entries.tolist() == [3, 6, 4]  # grouped by row, in each row as chosen
    code = listed_code(h.detach(), torch.tensor([1, 7]), torch.tensor([5.0, 6.0]))
    assert code.view(-1).tolist() == [0, 5, 0, 0, 0, 0, 0, 6]


def test_positive_positions_lists_the_non_zero_entries_of_a_non_negative_code():
    z = torch.randn(37, 53, generator=torch.Generator().manual_seed(0)).relu()
    assert torch.equal(positive_positions(z), (z.view(-1) > 0).nonzero().view(-1))
    assert torch.equal(positive_positions(z.double()), (z.view(-1) > 0).nonzero().view(-1))


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


@pytest.mark.parametrize("other_reader", [False, True])
def test_listed_values_send_the_dense_gradients_to_the_linear_inputs(other_reader):
    """Values read at listed entries of a listed_linear's output give x, W and b the gradients
    that reading them from F.linear's output gives; another reader of h adds its own."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(30, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(100, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(100, dtype=torch.float64, generator=generator, requires_grad=True)
    entries = torch.randperm(3000, generator=generator)[:200].sort().values  # grouped by row, some rows empty
    upstream = torch.randn(200, dtype=torch.float64, generator=generator)

    def read(h: torch.Tensor) -> torch.Tensor:
        total = (listed_values(h, entries) * upstream).sum()
        return total + (h[:, :7].square().sum() if other_reader else 0)

    h = listed_linear(x, weight, bias)
    torch.testing.assert_close(h, torch.nn.functional.linear(x, weight, bias))
    ours = torch.autograd.grad(read(h), [x, weight, bias])
    theirs = torch.autograd.grad(read(torch.nn.functional.linear(x, weight, bias)), [x, weight, bias])
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda x, w, b: listed_values(listed_linear(x, w, b), entries), (x, weight, bias))


@pytest.mark.parametrize("family", ["sae-topk", "sae-batchtopk", "sae-jumprelu", "sae-l1"])
def test_dictionary_loss_and_gradients_match_the_dense_decoder(family, listed_loops):
    """The decoder reads the entries a latent lists, with the values the latent hands it; dropping
    them (dense products throughout) changes neither the loss nor any gradient, the thresholds'
    straight-through gradients and AuxK's included; with the compiled loops and with torch's."""
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
    assert 0 < len(code.active_entries) <= dense_above(code) * code.numel()  # the sparse path is tested
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
