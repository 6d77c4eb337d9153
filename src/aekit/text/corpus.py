"""Sentence corpora: text files of one sentence a line, parallel pairs of them, and Multi30K.

A corpus file is UTF-8 text, gzipped or not, one sentence a line; surrounding whitespace is
stripped. A parallel corpus is two such files aligned line by line, or one tab-separated file
(``source<TAB>target``).

Multi30K (Elliott et al., 2016: image captions in English with German, French and Czech
translations) is found like the idx datasets of :mod:`aekit.data.idx`: in ``data_dir/multi30k/``,
``$AEKIT_DATA_DIR/multi30k/`` and the download cache (``$AEKIT_CACHE_DIR`` or ``~/.cache/aekit``),
as ``{split}.{lang}.gz`` or decompressed ``{split}.{lang}``. Every file is checked before use: a
``.gz`` by the sha256 of the published ``.gz`` (or of its decompressed bytes, for one compressed
again), a decompressed file by the sha256 of its bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path

from ..data.idx import cache_dir, search_dirs
from ..errors import AekitError

MULTI30K_LANGUAGES = ("en", "de", "fr", "cs")
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr")
MULTI30K_LINES = {"train": 29000, "val": 1014, "test_2016_flickr": 1000}
MULTI30K_URL = (
    "https://github.com/multi30k/dataset/raw/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw/{split}.{lang}.gz"
)

# "{split}.{lang}" -> (sha256 of the published .gz, sha256 of its decompressed bytes)
MULTI30K_SHA256: dict[str, tuple[str, str]] = {
    "train.en": (
        "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
        "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",
    ),
    "train.de": (
        "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
        "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",
    ),
    "train.fr": (
        "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
        "5925a3c18f1587b6b54b87743106e6e8ab93618edb6f65d19eac0621f853a10d",
    ),
    "train.cs": (
        "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
        "2be68b38c8d586ff4f54eb13cc6e1baaaa053695b3f070d3038303a47f2268da",
    ),
    "val.en": (
        "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
        "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",
    ),
    "val.de": (
        "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
        "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",
    ),
    "val.fr": (
        "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
        "5304e444d842e962b2dda4d816b70b22a1765b15401642b7ca37a67477e708dc",
    ),
    "val.cs": (
        "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
        "d53827e469b0a1ca8d57e9e26b2b64c4bc4b33f5479c7b03ae87ae5c882c3e33",
    ),
    "test_2016_flickr.en": (
        "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
        "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182",
    ),
    "test_2016_flickr.de": (
        "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
        "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16",
    ),
    "test_2016_flickr.fr": (
        "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
        "cb3160d69b002bb638e66cc7612fcd56cb0af82eadc9c142dedc438afb885ef6",
    ),
    "test_2016_flickr.cs": (
        "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
        "45adb85f688de8407fddcbe1b36dca15d12aab868149b337e2576f2d6d2ff8d8",
    ),
}


def _parse_lines(lines: Iterable[bytes], source: str, allow_empty: bool) -> list[str]:
    """Sentences from raw lines (bytes, each ending in ``\\n`` but perhaps the last), checked one by one."""
    sentences = []
    for number, raw in enumerate(lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise AekitError(
                f"{source} line {number} is not UTF-8",
                f"byte {error.start + 1} of the line ({raw[error.start : error.start + 1]!r}) is no UTF-8 character",
                "convert the file to UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)",
            ) from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        text = text.strip()
        if not text and not allow_empty:
            raise AekitError(
                f"{source} line {number} is empty",
                "a corpus holds one sentence a line",
                "remove empty lines (or keep them with allow_empty=True)",
            )
        sentences.append(text)
    if not sentences:
        raise AekitError(f"{source} has no lines", "the file is empty", "point at a file of one sentence a line")
    return sentences


def read_lines(path: str | Path, allow_empty: bool = False) -> list[str]:
    """The sentences of a UTF-8 text file (``.gz`` decompressed on the fly), one a line, stripped of
    surrounding whitespace (and of a byte-order mark)."""
    path = Path(path)
    if not path.is_file():
        raise AekitError(f"corpus file {path} does not exist", "nothing to read", "check the path")
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
            return _parse_lines(handle, str(path), allow_empty)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise AekitError(
            f"{path} is not a readable gzip file", str(error), "decompress it again or re-download it"
        ) from None


def read_parallel(source: str | Path, target: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Aligned (source sentences, target sentences): from two files of the same line count, or, with
    ``target`` None, from one file of ``source<TAB>target`` lines."""
    if target is not None:
        sources, targets = read_lines(source), read_lines(target)
        if len(sources) != len(targets):
            longer, shorter = (source, target) if len(sources) > len(targets) else (target, source)
            first = min(len(sources), len(targets)) + 1
            raise AekitError(
                f"{source} has {len(sources)} lines and {target} has {len(targets)}",
                f"line {first} exists in {longer} but not in {shorter}",
                "align the files line by line: line i of one is the translation of line i of the other",
            )
        return sources, targets
    sources, targets = [], []
    for number, line in enumerate(read_lines(source), 1):
        tabs = line.count("\t")
        if tabs != 1:
            raise AekitError(
                f"{source} line {number} has {tabs} tabs",
                "a tab-separated parallel corpus has exactly one tab a line, source<TAB>target",
                "fix that line, or pass the two sides as two files",
            )
        left, right = (side.strip() for side in line.split("\t"))
        if not left or not right:
            raise AekitError(
                f"{source} line {number} has an empty {'source' if not left else 'target'}",
                "every pair needs a sentence on both sides of the tab",
                "fix or remove that line",
            )
        sources.append(left)
        targets.append(right)
    return sources, targets


def _verified(packed: bytes, gzipped: bool, name: str, source: str) -> bytes:
    """The decompressed bytes of a Multi30K file, after checking them against the published checksums."""
    gz_sha256, raw_sha256 = MULTI30K_SHA256[name]
    if gzipped and hashlib.sha256(packed).hexdigest() == gz_sha256:
        return gzip.decompress(packed)
    try:
        raw = gzip.decompress(packed) if gzipped else packed
    except (OSError, EOFError, zlib.error) as error:
        raise AekitError(f"{source} is not a readable gzip file", str(error), "delete it and download again") from None
    if hashlib.sha256(raw).hexdigest() != raw_sha256:
        raise AekitError(
            f"{source} fails its checksum",
            "its content differs from the published Multi30K file (damaged or another file)",
            "delete it and download again, or point --data-dir at an intact copy",
        )
    return raw


def _download(name: str, url: str) -> tuple[bytes, str]:
    """(decompressed bytes, error): the verified file from ``url``, saved to the cache, or the reason it failed."""
    from ..files import atomic_write_bytes

    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            packed = response.read()
        raw = _verified(packed, True, name, url)
    except (urllib.error.URLError, OSError) as error:
        return b"", f"{url}: {getattr(error, 'reason', error)}"
    except AekitError as error:
        return b"", str(error)
    atomic_write_bytes(cache_dir() / "multi30k" / f"{name}.gz", packed)
    return raw, ""


def _multi30k_file(split: str, lang: str, data_dir: str | Path | None, download: bool) -> list[str]:
    name = f"{split}.{lang}"
    folders = search_dirs("multi30k", data_dir)
    for folder in folders:
        for filename in (f"{name}.gz", name):
            path = folder / filename
            if path.is_file():
                raw = _verified(path.read_bytes(), filename.endswith(".gz"), name, str(path))
                return _parse_lines(io.BytesIO(raw), str(path), allow_empty=False)
    looked = ", ".join(str(folder) for folder in dict.fromkeys(folders))
    if download:
        url = MULTI30K_URL.format(split=split, lang=lang)
        raw, failure = _download(name, url)
        if not failure:
            return _parse_lines(io.BytesIO(raw), url, allow_empty=False)
        raise AekitError(
            f"Multi30K file multi30k/{name}.gz is not on this machine and could not be downloaded",
            f"looked in {looked}; {failure}",
            f"go online, or pass --data-dir (or set AEKIT_DATA_DIR) to a folder holding multi30k/{name}.gz",
        )
    raise AekitError(
        f"Multi30K file multi30k/{name}.gz not found",
        f"looked in {looked}",
        f"pass --data-dir (or set AEKIT_DATA_DIR) to a folder holding multi30k/{name}.gz, or allow downloading",
    )


def parse_pair(pair: str) -> tuple[str, str]:
    """("de", "en") from ``"de-en"``: a source and a target language of Multi30K (the same one twice is allowed)."""
    languages = pair.split("-") if isinstance(pair, str) else []
    if len(languages) != 2 or any(lang not in MULTI30K_LANGUAGES for lang in languages):
        raise AekitError(
            f"unknown Multi30K language pair {pair!r}",
            f"a pair is SOURCE-TARGET, each one of {', '.join(MULTI30K_LANGUAGES)}",
            "pass e.g. de-en (or en-en for a sentence autoencoder)",
        )
    return languages[0], languages[1]


def load_multi30k(
    pair: str = "de-en", split: str = "train", data_dir: str | Path | None = None, download: bool = True
) -> tuple[list[str], list[str]]:
    """(source sentences, target sentences) of a Multi30K split, aligned line by line: 29 000 pairs in
    ``train``, 1 014 in ``val``, 1 000 in ``test_2016_flickr``. Missing files are downloaded into the
    cache when ``download``."""
    source_lang, target_lang = parse_pair(pair)
    if split not in MULTI30K_SPLITS:
        raise AekitError(
            f"unknown Multi30K split {split!r}", f"the splits are {', '.join(MULTI30K_SPLITS)}", "pick one"
        )
    sources = _multi30k_file(split, source_lang, data_dir, download)
    targets = sources if target_lang == source_lang else _multi30k_file(split, target_lang, data_dir, download)
    if len(sources) != len(targets):
        raise AekitError(
            f"Multi30K {split}.{source_lang} has {len(sources)} lines and {split}.{target_lang} has {len(targets)}",
            "the two sides of a split are aligned line by line",
            "replace the files with the published ones",
        )
    return sources, list(targets)
