"""Greedy and beam search against brute force over every sequence, a step-by-step argmax, one
sentence at a time, and a cached model against its cache-free twin (reorder bookkeeping)."""

import math

import pytest
import torch

from aekit.errors import AekitError
from aekit.text.decoding import (
    BOS,
    EOS,
    PAD,
    Decodable,
    beam_search,
    beam_search_from_state,
    greedy,
    greedy_from_state,
    translate_ids,
)

V = 6  # PAD, UNK, BOS, EOS and two words
EMITTED = [token for token in range(V) if token not in (PAD, BOS)]  # UNK, EOS and the words
SOURCE = torch.tensor([[4, 5, 0, 0], [1, 4, 5, 5], [5, 0, 0, 0], [4, 4, 1, 0], [5, 5, 5, 4]])
MASK = SOURCE != PAD


def random_table(*shape: int, seed: int, eos_shift: float = 0.0) -> torch.Tensor:
    """Log-probabilities (*shape, V) with PAD and BOS at -inf."""
    generator = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(*shape, V, generator=generator)
    logits[..., EOS] += eos_shift
    logits[..., [PAD, BOS]] = -math.inf
    return logits.log_softmax(-1)


class MarkovModel:
    """Cache-free: the next token depends on the source row's table and the prefix's last token."""

    def __init__(self, seed: int = 0, rows: int = 5, eos_shift: float = 0.0) -> None:
        self.table = random_table(rows, V, seed=seed, eos_shift=eos_shift)  # (R, last, V)
        self.rows = rows
        self.steps = 0

    def start(self, source, source_mask):
        return (source * source_mask).sum(1) % self.rows  # (B,) the source's table

    def step(self, state, prefix):
        self.steps += 1
        return self.table[state, prefix[:, -1]], state

    def reorder(self, state, index):
        return state[index]


class SumModel:
    """The next token depends on the source row's table and the sum of the prefix's tokens (mod 7).

    ``cached=True`` keeps the running sum in the state and reads only the newest token of each
    prefix, so a wrong ``reorder`` gives wrong log-probabilities; ``cached=False`` recomputes it.
    """

    def __init__(self, cached: bool, seed: int = 1, rows: int = 5) -> None:
        self.table = random_table(rows, 7, seed=seed)  # (R, sum mod 7, V)
        self.rows, self.cached = rows, cached
        self.reorders: list[int] = []

    def start(self, source, source_mask):
        row = (source * source_mask).sum(1) % self.rows
        return {"row": row, "sum": torch.zeros_like(row), "fed": 0}

    def step(self, state, prefix):
        if self.cached:
            assert prefix.shape[1] == state["fed"] + 1, "one new token per step"
            total = state["sum"] + prefix[:, -1]
        else:
            total = prefix.sum(1)
        state = {"row": state["row"], "sum": total, "fed": prefix.shape[1]}
        return self.table[state["row"], total % 7], state

    def reorder(self, state, index):
        self.reorders.append(index.numel())
        return {"row": state["row"][index], "sum": state["sum"][index], "fed": state["fed"]}


MODELS = {
    "markov": lambda: MarkovModel(),
    "markov_eos": lambda: MarkovModel(seed=3, eos_shift=1.0),
    "cached_sum": lambda: SumModel(cached=True),
}
CACHE_FREE = {**MODELS, "cached_sum": lambda: SumModel(cached=False)}  # may be fed any prefix


def sequence_scores(model, row: int, max_len: int, length_penalty: float) -> dict[tuple[int, ...], float]:
    """Every sequence the model may emit for source row ``row`` -> its length-normalised score."""
    scores = {}

    def grow(prefix: list[int], state, total: float) -> None:
        log_probs, state = model.step(state, torch.tensor([prefix]))
        for token in EMITTED:
            value = total + float(log_probs[0, token])
            sequence = (*prefix[1:], token)
            if token == EOS or len(sequence) == max_len:
                scores[sequence] = value / len(sequence) ** length_penalty
            else:
                grow([*prefix, token], state, value)

    grow([BOS], model.start(SOURCE[row : row + 1], MASK[row : row + 1]), 0.0)
    return scores


def padded(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [PAD] * (width - len(row)) for row in rows])


def stepwise_argmax(model, max_len: int) -> torch.Tensor:
    """Greedy decoding one sentence at a time, recomputing from the whole prefix at every step."""
    rows = []
    for row in range(len(SOURCE)):
        prefix = [BOS]
        while len(prefix) <= max_len and prefix[-1] != EOS:
            state = model.start(SOURCE[row : row + 1], MASK[row : row + 1])
            log_probs, _ = model.step(state, torch.tensor([prefix]))
            prefix.append(int(log_probs[0].argmax()))
        rows.append(prefix[1:])
    return padded(rows)


def assert_well_formed(ids: torch.Tensor, max_len: int) -> None:
    """Rows end with EOS (then PAD) or run to max_len; no PAD or BOS inside; no all-PAD column."""
    assert ids.dtype == torch.long and ids.dim() == 2 and ids.shape[1] <= max_len
    assert not (ids == BOS).any()
    lengths = []
    for row in ids.tolist():
        length = row.index(EOS) + 1 if EOS in row else max_len
        assert all(token != PAD for token in row[:length]), row
        assert all(token == PAD for token in row[length:]), row
        lengths.append(length)
    assert ids.shape[1] == max(lengths)


def test_the_toy_models_are_decodable():
    for make in MODELS.values():
        assert isinstance(make(), Decodable)
    assert not isinstance(object(), Decodable)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 0.6])
def test_a_wide_beam_finds_the_brute_force_optimum(name, length_penalty):
    # 3 words + EOS, max_len 4: 1 + 3 + 9 + 27 sequences end in EOS and 81 are cut, 121 <= beam
    max_len, model = 4, MODELS[name]()
    found = beam_search(model, SOURCE, MASK, beam=128, max_len=max_len, length_penalty=length_penalty)
    assert_well_formed(found, max_len)
    best = []
    for row in range(len(SOURCE)):
        scores = sequence_scores(model, row, max_len, length_penalty)
        assert len(scores) == 121
        ranked = sorted(scores.values(), reverse=True)
        assert ranked[0] - ranked[1] > 1e-4, "a near tie: pick another seed"
        best.append(list(max(scores, key=scores.get)))
    torch.testing.assert_close(found, padded(best), rtol=0, atol=0)


def test_beam_search_beats_greedy_somewhere():
    """The oracle above is not trivially greedy: on these tables the optimum differs from greedy."""
    model = MarkovModel()
    assert not torch.equal(beam_search(model, SOURCE, MASK, 128, 4, 0.0), greedy(model, SOURCE, MASK, 4))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_one_is_greedy(name, length_penalty):
    expected = greedy(MODELS[name](), SOURCE, MASK, max_len=9)
    found = beam_search(MODELS[name](), SOURCE, MASK, beam=1, max_len=9, length_penalty=length_penalty)
    torch.testing.assert_close(found, expected, rtol=0, atol=0)
    torch.testing.assert_close(translate_ids(MODELS[name](), SOURCE, MASK, 1, 9, length_penalty), expected)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("max_len", [1, 3, 12])
def test_greedy_is_the_stepwise_argmax(name, max_len):
    found = greedy(MODELS[name](), SOURCE, MASK, max_len=max_len)
    assert_well_formed(found, max_len)
    torch.testing.assert_close(found, stepwise_argmax(CACHE_FREE[name](), max_len), rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("beam, length_penalty", [(None, 0.0), (3, 0.0), (3, 1.0), (5, 0.6)])
def test_the_batch_decodes_as_each_sentence_alone(name, beam, length_penalty):
    def decode(source, mask):
        if beam is None:
            return greedy(MODELS[name](), source, mask, max_len=10)
        return beam_search(MODELS[name](), source, mask, beam, max_len=10, length_penalty=length_penalty)

    together = decode(SOURCE, MASK)
    assert_well_formed(together, 10)
    alone = padded([decode(SOURCE[i : i + 1], MASK[i : i + 1])[0].tolist() for i in range(len(SOURCE))])
    torch.testing.assert_close(together, alone, rtol=0, atol=0)


@pytest.mark.parametrize("beam, length_penalty", [(2, 0.0), (3, 1.0), (6, 0.6), (40, 0.0)])
def test_the_cached_state_is_reordered_with_the_hypotheses(beam, length_penalty):
    cached = SumModel(cached=True)
    found = beam_search(cached, SOURCE, MASK, beam, max_len=8, length_penalty=length_penalty)
    expected = beam_search(SumModel(cached=False), SOURCE, MASK, beam, max_len=8, length_penalty=length_penalty)
    torch.testing.assert_close(found, expected, rtol=0, atol=0)
    assert cached.reorders[0] == len(SOURCE) * beam  # the expansion to B * beam rows
    assert_well_formed(found, 8)
    torch.testing.assert_close(greedy(SumModel(cached=True), SOURCE, MASK, 8), stepwise_argmax(SumModel(False), 8))


def test_hypotheses_without_eos_are_cut_at_max_len():
    model = MarkovModel()
    model.table[..., EOS] = -math.inf
    for ids in (greedy(model, SOURCE, MASK, 5), beam_search(model, SOURCE, MASK, 3, 5, 1.0)):
        assert ids.shape == (len(SOURCE), 5)
        assert not ((ids == EOS) | (ids == PAD)).any()


def test_a_sure_eos_stops_at_once():
    model = MarkovModel(eos_shift=30.0)  # EOS first, with probability ~1
    for length_penalty, steps in ((0.0, 1), (1.0, 2)):  # length_penalty > 0: until every hypothesis ends
        model.steps = 0
        ids = beam_search(model, SOURCE, MASK, 4, 50, length_penalty)
        assert torch.equal(ids, torch.full((len(SOURCE), 1), EOS))
        assert model.steps == steps
    model.steps = 0
    assert torch.equal(greedy(model, SOURCE, MASK, 50), torch.full((len(SOURCE), 1), EOS))
    assert model.steps == 1


def test_length_penalty_zero_stops_once_the_best_is_finished():
    """With the raw sum nothing can beat a finished best hypothesis: the search stops before max_len."""
    model = MarkovModel(seed=3, eos_shift=1.0)
    ids = beam_search(model, SOURCE, MASK, 4, 40, 0.0)
    assert model.steps < 40
    assert (ids == EOS).any(1).all()


def test_the_from_state_entry_points():
    model = MarkovModel()
    state = model.start(SOURCE, MASK)
    torch.testing.assert_close(greedy_from_state(model, state, len(SOURCE), 7, "cpu"), greedy(model, SOURCE, MASK, 7))
    expected = beam_search(model, SOURCE, MASK, 3, 7, 1.0)
    torch.testing.assert_close(beam_search_from_state(model, state, len(SOURCE), 3, 7, 1.0, "cpu"), expected)
    torch.testing.assert_close(translate_ids(model, SOURCE, MASK, 3, 7, 1.0), expected)


def test_an_empty_batch():
    for ids in (greedy(MarkovModel(), SOURCE[:0], MASK[:0], 5), beam_search(MarkovModel(), SOURCE[:0], MASK[:0])):
        assert ids.shape == (0, 0) and ids.dtype == torch.long


@pytest.mark.parametrize(
    "call",
    [
        lambda m: beam_search(m, SOURCE, MASK, beam=0),
        lambda m: beam_search(m, SOURCE, MASK, beam=2.0),
        lambda m: beam_search(m, SOURCE, MASK, max_len=0),
        lambda m: beam_search(m, SOURCE, MASK, length_penalty=math.nan),
        lambda m: greedy(m, SOURCE, MASK, max_len=0),
        lambda m: greedy(m, SOURCE[0], MASK[0], max_len=3),
        lambda m: greedy(m, SOURCE, MASK[:, :2], max_len=3),
        lambda m: translate_ids(m, SOURCE, MASK, beam=-1),
    ],
)
def test_bad_arguments_are_refused(call):
    with pytest.raises(AekitError):
        call(MarkovModel())


def test_a_model_with_the_wrong_output_shape_is_refused():
    model = MarkovModel()
    model.step = lambda state, prefix: (torch.zeros(prefix.shape[0] + 1, V), state)
    with pytest.raises(AekitError, match="shape"):
        greedy(model, SOURCE, MASK, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_decoding_stays_on_the_source_device():
    model, cuda = MarkovModel(), torch.device("cuda")
    expected = beam_search(model, SOURCE, MASK, 3, 6, 1.0)
    model.table = model.table.to(cuda)
    found = beam_search(model, SOURCE.to(cuda), MASK.to(cuda), 3, 6, 1.0)
    assert found.device.type == "cuda"
    torch.testing.assert_close(found.cpu(), expected)
    assert greedy(model, SOURCE.to(cuda), MASK.to(cuda), 6).device.type == "cuda"
