"""Sentences: corpus files, Multi30K, the subword tokenizer and token batches."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
from pathlib import Path

import pytest
import torch

from aekit.errors import AekitError
from aekit.text import corpus
from aekit.text.batches import TokenBatch, TokenSource, make_batch
from aekit.text.corpus import load_multi30k, read_lines, read_parallel
from aekit.text.tokenizer import BOS, EOS, PAD, UNK, SubwordTokenizer

SUBJECTS = ["Der Mann", "Die Frau", "Ein Hund", "Das Mädchen", "Ein Junge", "Die Großmutter", "A man", "Two dogs"]
VERBS = ["läuft", "spielt", "isst", "schläft", "grüßt", "runs", "plays", "eats"]
PLACES = ["über die Straße", "im Park", "auf dem Sofa", "in der Küche", "on the beach", "at the café", "in Zürich"]
ENDINGS = [".", "!", "?", ", oder?", "; gut."]
EXTRA = ["Über Öl, Äpfel und Füße: süß!", "ÄÖÜ äöü ß (groß) — «gut»", "Marken wie <s>, </s> und <pad> sind Text."]


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` seeded short sentences with umlauts, ß and punctuation."""
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(PLACES)}{rng.choice(ENDINGS)}" for _ in range(n)]


@pytest.fixture(scope="module")
def tokenizer() -> SubwordTokenizer:
    return SubwordTokenizer.train(sentences(300) + EXTRA * 2, vocab_size=120, min_frequency=2)


# --- tokenizer


def test_tokenizer_round_trip_and_specials(tokenizer):
    lines = [*sentences(200, seed=1), *EXTRA, "Die Füße der Großmutter: <s> süß </s>?"]
    ids = tokenizer.encode(lines)
    assert tokenizer.decode(ids) == lines
    assert all(ids) and all(min(row) > EOS for row in ids)  # typed specials are text, not special ids
    assert [tokenizer._tokenizer.id_to_token(i) for i in (PAD, UNK, BOS, EOS)] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert 16 <= tokenizer.vocab_size <= 120


def test_tokenizer_nfkc_and_unknown_characters(tokenizer):
    decomposed = "Die Frau la\u0308uft."  # a + combining diaeresis: NFKC makes it ä
    assert tokenizer.decode(tokenizer.encode([decomposed])) == ["Die Frau läuft."]
    assert UNK in tokenizer.encode(["Der Mann 漢"])[0]


def test_tokenizer_decode_stops_at_eos_and_drops_pad_bos(tokenizer):
    a, b = tokenizer.encode(["Der Mann läuft im Park.", "Ein Hund isst."])
    rows = [[BOS, *a, EOS, *b, EOS], [BOS, *b, EOS, PAD, PAD], [BOS, PAD, *b]]
    assert tokenizer.decode(rows) == ["Der Mann läuft im Park.", "Ein Hund isst.", "Ein Hund isst."]
    width = max(map(len, rows))
    tensor = torch.tensor([row + [PAD] * (width - len(row)) for row in rows])
    assert tokenizer.decode(tensor) == tokenizer.decode(rows)
    with pytest.raises(AekitError, match="token id 999"):
        tokenizer.decode([[5, 999]])


def test_tokenizer_truncation(tokenizer):
    lines = ["Ein Hund.", "Die Großmutter schläft in der Küche; gut.", "A man."]
    lengths = [len(ids) for ids in tokenizer.encode(lines)]
    limit = lengths[1] - 1
    assert lengths[0] <= limit and lengths[2] <= limit
    with pytest.raises(AekitError, match=f"sentence 2 has {lengths[1]} tokens, more than max_tokens={limit}.*truncate"):
        tokenizer.encode(lines, max_tokens=limit)
    cut = tokenizer.encode(lines, max_tokens=limit, truncate=True)
    assert tokenizer.last_truncated == 1
    assert [len(ids) for ids in cut] == [lengths[0], limit, lengths[2]]
    tokenizer.encode(lines)
    assert tokenizer.last_truncated == 0


def test_tokenizer_save_load(tokenizer, tmp_path):
    path = tokenizer.save(tmp_path / "tokenizer.json")
    loaded = SubwordTokenizer.load(path)
    lines = sentences(50, seed=2)
    assert loaded.encode(lines) == tokenizer.encode(lines)
    assert loaded.fingerprint == tokenizer.fingerprint and len(tokenizer.fingerprint) == 64
    assert loaded.to_json() == tokenizer.to_json()
    other = SubwordTokenizer.train(sentences(300), vocab_size=100)
    assert other.fingerprint != tokenizer.fingerprint


def test_tokenizer_errors(tmp_path):
    with pytest.raises(AekitError, match="vocab_size=8 is too small"):
        SubwordTokenizer.train(sentences(10), vocab_size=8)
    with pytest.raises(AekitError, match="no sentences"):
        SubwordTokenizer.train([], vocab_size=100)
    with pytest.raises(AekitError, match="does not exist"):
        SubwordTokenizer.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"not": "a tokenizer"}')
    with pytest.raises(AekitError, match="is not a tokenizer file"):
        SubwordTokenizer.load(tmp_path / "bad.json")
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")).save(str(tmp_path / "other.json"))
    with pytest.raises(AekitError, match="lacks <pad>"):
        SubwordTokenizer.load(tmp_path / "other.json")


# --- corpus files


def test_read_lines_plain_and_gz(tmp_path):
    text = "\ufeffDer Mann läuft.\r\n  Ein Hund bellt.  \nß\n"
    (tmp_path / "a.txt").write_bytes(text.encode())
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text.encode()))
    expected = ["Der Mann läuft.", "Ein Hund bellt.", "ß"]
    assert read_lines(tmp_path / "a.txt") == expected
    assert read_lines(tmp_path / "a.txt.gz") == expected


def test_read_lines_errors(tmp_path):
    with pytest.raises(AekitError, match="does not exist"):
        read_lines(tmp_path / "missing.txt")
    (tmp_path / "latin.txt").write_bytes("eins\nzwei\ndrei Straße\n".encode() + "Stra\xdfe\n".encode("latin-1"))
    with pytest.raises(AekitError, match=r"latin\.txt line 4 is not UTF-8"):
        read_lines(tmp_path / "latin.txt")
    (tmp_path / "line3.txt").write_bytes(b"eins\nzwei\n\xff drei\n")
    with pytest.raises(AekitError, match=r"line3\.txt line 3 is not UTF-8"):
        read_lines(tmp_path / "line3.txt")
    (tmp_path / "gap.txt").write_text("eins\n   \ndrei\n")
    with pytest.raises(AekitError, match=r"gap\.txt line 2 is empty.*remove empty lines"):
        read_lines(tmp_path / "gap.txt")
    assert read_lines(tmp_path / "gap.txt", allow_empty=True) == ["eins", "", "drei"]
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(AekitError, match="has no lines"):
        read_lines(tmp_path / "empty.txt")
    (tmp_path / "fake.gz").write_bytes(b"not gzip")
    with pytest.raises(AekitError, match="not a readable gzip file"):
        read_lines(tmp_path / "fake.gz")


def test_read_parallel(tmp_path):
    (tmp_path / "src.txt").write_text("a\nb\nc\n")
    (tmp_path / "tgt.txt").write_text("x\ny\n")
    with pytest.raises(AekitError, match=r"has 3 lines and .*tgt\.txt has 2: line 3 exists in .*src\.txt but not in"):
        read_parallel(tmp_path / "src.txt", tmp_path / "tgt.txt")
    (tmp_path / "tgt.txt").write_text("x\ny\nz\n")
    assert read_parallel(tmp_path / "src.txt", tmp_path / "tgt.txt") == (["a", "b", "c"], ["x", "y", "z"])
    (tmp_path / "pairs.tsv").write_text("Ein Hund.\tA dog.\nDie Frau.\t The woman.\n")
    assert read_parallel(tmp_path / "pairs.tsv") == (["Ein Hund.", "Die Frau."], ["A dog.", "The woman."])
    (tmp_path / "bad.tsv").write_text("a\tb\nc\td\te\n")
    with pytest.raises(AekitError, match=r"bad\.tsv line 2 has 2 tabs"):
        read_parallel(tmp_path / "bad.tsv")
    (tmp_path / "none.tsv").write_text("a\tb\nc d\n")
    with pytest.raises(AekitError, match=r"none\.tsv line 2 has 0 tabs"):
        read_parallel(tmp_path / "none.tsv")


# --- Multi30K


def fake_multi30k(root: Path, monkeypatch, lines: int = 5) -> dict[str, list[str]]:
    """A multi30k/ folder of val files in every language, with the checksum table pointed at them."""
    folder = root / "multi30k"
    folder.mkdir(parents=True)
    table, content = {}, {}
    for lang in corpus.MULTI30K_LANGUAGES:
        content[lang] = [f"{lang} Satz {i} über Straßen." for i in range(lines)]
        raw = ("\n".join(content[lang]) + "\n").encode()
        packed = gzip.compress(raw)
        (folder / f"val.{lang}.gz").write_bytes(packed)
        table[f"val.{lang}"] = (hashlib.sha256(packed).hexdigest(), hashlib.sha256(raw).hexdigest())
    monkeypatch.setattr(corpus, "MULTI30K_SHA256", table)
    return content


def test_multi30k_from_a_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path / "cache"))
    content = fake_multi30k(tmp_path / "data", monkeypatch)
    assert load_multi30k("de-en", "val", data_dir=tmp_path / "data", download=False) == (content["de"], content["en"])
    sources, targets = load_multi30k("en-en", "val", data_dir=tmp_path / "data", download=False)
    assert sources == targets == content["en"] and sources is not targets
    monkeypatch.setenv("AEKIT_DATA_DIR", str(tmp_path / "data"))
    assert load_multi30k("fr-cs", "val", download=False) == (content["fr"], content["cs"])
    # a decompressed file is checked by the hash of its content
    raw = gzip.decompress((tmp_path / "data" / "multi30k" / "val.fr.gz").read_bytes())
    (tmp_path / "data" / "multi30k" / "val.fr.gz").unlink()
    (tmp_path / "data" / "multi30k" / "val.fr").write_bytes(raw)
    assert load_multi30k("fr-cs", "val", download=False)[0] == content["fr"]


def test_multi30k_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path / "cache"))
    fake_multi30k(tmp_path / "data", monkeypatch)
    for pair in ("de-xx", "de", "de-en-fr", "deen"):
        with pytest.raises(AekitError, match=r"unknown Multi30K language pair.*en, de, fr, cs"):
            load_multi30k(pair, "val", data_dir=tmp_path / "data")
    with pytest.raises(AekitError, match="unknown Multi30K split 'dev'"):
        load_multi30k("de-en", "dev", data_dir=tmp_path / "data")
    with pytest.raises(
        AekitError, match=r"multi30k/train\.de\.gz not found: looked in .*data/multi30k.*AEKIT_DATA_DIR"
    ):
        load_multi30k("de-en", "train", data_dir=tmp_path / "data", download=False)
    damaged = tmp_path / "data" / "multi30k" / "val.en.gz"
    damaged.write_bytes(gzip.compress(b"Ein anderer Satz.\n"))
    with pytest.raises(AekitError, match=r"val\.en\.gz fails its checksum"):
        load_multi30k("de-en", "val", data_dir=tmp_path / "data", download=False)


def test_multi30k_download_failure_says_where_it_looked(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(AekitError, match=r"could not be downloaded: looked in .*cache/multi30k.*no network.*go online"):
        load_multi30k("de-en", "val", data_dir=tmp_path / "data")


def test_multi30k_download_is_verified_and_cached(tmp_path, monkeypatch):
    import io
    import urllib.request

    content = fake_multi30k(tmp_path / "published", monkeypatch)
    urls = []

    def serve(url, timeout):
        urls.append(url)
        name = url.rsplit("/", 1)[1]
        return io.BytesIO((tmp_path / "published" / "multi30k" / name).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert load_multi30k("cs-de", "val", data_dir=tmp_path / "empty") == (content["cs"], content["de"])
    assert urls == [corpus.MULTI30K_URL.format(split="val", lang=lang) for lang in ("cs", "de")]
    assert sorted(p.name for p in (tmp_path / "cache" / "multi30k").iterdir()) == ["val.cs.gz", "val.de.gz"]
    assert load_multi30k("cs-de", "val", download=False) == (content["cs"], content["de"])  # from the cache
    assert len(urls) == 2


def real_data_dir() -> Path | None:
    for candidate in (os.environ.get("AEKIT_DATA_DIR"), Path(__file__).resolve().parents[2] / "shared" / "data"):
        if candidate and (Path(candidate) / "multi30k" / "val.de.gz").is_file():
            return Path(candidate)
    return None


@pytest.mark.skipif(real_data_dir() is None, reason="no multi30k/ folder on this machine")
def test_multi30k_real_val_split():
    sources, targets = load_multi30k("de-en", "val", data_dir=real_data_dir(), download=False)
    assert len(sources) == len(targets) == corpus.MULTI30K_LINES["val"] == 1014
    assert sources[0] == "Eine Gruppe von Männern lädt Baumwolle auf einen Lastwagen"
    assert targets[0] == "A group of men are loading cotton onto a truck"


# --- batches


def test_make_batch_and_token_batch():
    batch = make_batch([[5, 6, 7], [8]], [[9], [10, 11, 12, 13]])
    assert batch.source.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD]]
    assert batch.target.tolist() == [[BOS, 9, EOS, PAD, PAD, PAD], [BOS, 10, 11, 12, 13, EOS]]
    assert batch.source.dtype == batch.target.dtype == torch.long
    assert batch.source_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.target_input.tolist() == [[BOS, 9, EOS, PAD, PAD], [BOS, 10, 11, 12, 13]]
    assert batch.target_output.tolist() == [[9, EOS, PAD, PAD, PAD], [10, 11, 12, 13, EOS]]
    assert batch.weight == 2 + 5 and len(batch) == 2
    second = batch[1:]
    assert second.source.tolist() == [[8, EOS]] and second.target.tolist() == [[BOS, 10, 11, 12, 13, EOS]]
    first = batch[0]
    assert first.source.tolist() == [[5, 6, 7, EOS]] and first.target.tolist() == [[BOS, 9, EOS]]
    assert batch[-1].source.tolist() == second.source.tolist()
    assert batch[0:2] is batch and len(batch[2:]) == 0
    assert batch[torch.tensor([1])].target.tolist() == second.target.tolist()
    moved = batch.to("cpu")
    assert isinstance(moved, TokenBatch) and torch.equal(moved.source, batch.source)
    with pytest.raises(AekitError, match="2 source sentences and 1 target"):
        make_batch([[5], [6]], [[7]])
    with pytest.raises(AekitError, match="target sentence 2 has no tokens"):
        make_batch([[5], [6]], [[7], []])


def random_pairs(n: int, seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    rng = random.Random(seed)
    sources = [[rng.randrange(4, 50) for _ in range(rng.randrange(1, 20))] for _ in range(n)]
    targets = [[rng.randrange(4, 50) for _ in range(rng.randrange(1, 25))] for _ in range(n)]
    return sources, targets


def test_token_source_epochs():
    sources, targets = random_pairs(200)
    source = TokenSource(sources, targets, batch_tokens=120)
    assert len(source) == 200 and source.tokens == sum(len(t) + 1 for t in targets)
    epoch = list(source.epoch(32, seed=3))
    assert len(epoch) == source.steps_per_epoch() == len(list(source.epoch(32, seed=4)))
    assert len(list(source.in_order(32))) == source.steps_per_epoch()
    seen = []
    for batch, index in zip(epoch, source.batch_indices(3), strict=True):
        assert len(batch) * max(batch.source.shape[1], batch.target.shape[1]) <= 120
        assert torch.equal(batch.source, make_batch([sources[i] for i in index], [targets[i] for i in index]).source)
        assert torch.equal(batch.target, make_batch([sources[i] for i in index], [targets[i] for i in index]).target)
        seen.extend(index.tolist())
    assert sorted(seen) == list(range(200))  # every sentence once
    assert sum(batch.weight for batch in epoch) == source.tokens
    again = list(source.epoch(32, seed=3))
    for a, b in zip(epoch, again, strict=True):
        assert torch.equal(a.source, b.source) and torch.equal(a.target, b.target)
    other = [index.tolist() for index in source.batch_indices(4)]
    assert other != [index.tolist() for index in source.batch_indices(3)]
    ordered = [batch.target.shape[1] for batch in source.in_order(32)]
    assert ordered == sorted(ordered)


def test_token_source_long_sentence_and_errors():
    source = TokenSource([[5] * 30, [6], [7]], [[8], [9], [10]], batch_tokens=8)
    batches = list(source.in_order(1))
    assert [len(b) for b in batches] == [2, 1] and batches[1].source.shape == (1, 31)  # alone, over the budget
    with pytest.raises(AekitError, match="2 source sentences and 1 target"):
        TokenSource([[5], [6]], [[7]])
    with pytest.raises(AekitError, match="no sentences"):
        TokenSource([], [])
    with pytest.raises(AekitError, match="source sentence 2 has no tokens"):
        TokenSource([[5], []], [[7], [8]])
    with pytest.raises(AekitError, match="target sentence 2 holds the padding id 0"):
        TokenSource([[5], [6]], [[7], [8, 0]])
    with pytest.raises(AekitError, match="batch_tokens=0"):
        TokenSource([[5]], [[7]], batch_tokens=0)
