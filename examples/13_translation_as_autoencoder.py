"""# 13. Machine translation as an autoencoder

**Claim.** A translation model is an encoder -> code -> decoder, like every autoencoder here, with
a target sentence in place of the input. When the code is one vector of fixed size per sentence
(the autoencoder bottleneck), everything the decoder may say must pass through it, and long
sentences suffer most (Cho et al. 2014); letting the decoder attend to every encoder state
(Bahdanau et al. 2015) removes the bottleneck. A sentence autoencoder with a Gaussian code (a
sentence VAE, Bowman et al. 2016) gives a code space whose points between two sentences decode to
sentences too, a homotopy, provided its decoder uses the code: the numbers below say whether it
does (its KL and active units); a collapsed one decodes every point to the same sentence.

**How it is measured.** Multi30K German -> English (train on `train`, score on
`test_2016_flickr`, 1 000 sentences, sacreBLEU on detokenised output, beam 4): two Transformer
seq2seq models with the same encoder and decoder, one with a fixed code of 256 numbers per
sentence (`--code fixed`), one with attention (`--code attention`), scored by BLEU in buckets of
source length; then a `sequence-vae` on the English side (GRU encoder and decoder, Gaussian code of
32, KL warm-up, decoder word dropout, a free-bits floor of 0.25 nats per code unit): its KL, active
units and importance-sampled -log p(x), and the sentences decoded along the straight line between
the codes of two test sentences. At full size the example uses the models in `--models DIR` when
given (`attention` and `fixed` trained by `bench/translation.py --save DIR`, `sequence-vae` by
`aekit train --family sequence-vae --architecture gru`; docs/sequences.md has the commands), else
trains its own for a few epochs; at the test suite's tiny size it
trains tiny ones on 2 000 short pairs. Sentences are read from `$AEKIT_DATA_DIR/multi30k` (or
`--data-dir`).
"""

# %%
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from _gallery import Run, command_line, new_figure, style

import aekit
from aekit.text.corpus import load_multi30k
from aekit.text.pipeline import corpus_scores, importance_sampled_nll

NAME = "13_translation_as_autoencoder"
FOLDERS = ("multi30k",)
MODELS = ("attention", "fixed", "sequence-vae")
BANDS = {"short": (1, 10), "middle": (11, 15), "long": (16, 100)}  # source length in words
BUCKET_NAMES = tuple(BANDS)
# at the tiny size BLEU is near zero for both codes: the bucket comparison needs the full size
TINY_EXEMPT = {
    "the fixed code's BLEU falls as the sources grow longer (short > middle > long)",
}

LABELS = {
    "test_sentences": "test sentences (test_2016_flickr)",
    **{f"bleu_{m}": f"{m} code: BLEU (sacreBLEU, beam 4)" for m in ("attention", "fixed")},
    **{f"nats_{m}": f"{m} code: nats per target token" for m in ("attention", "fixed")},
    **{
        f"bleu_{m}_{b}": f"{m} code: BLEU on {b} sources ({lo}-{hi} words)"
        for m in ("attention", "fixed")
        for b, (lo, hi) in BANDS.items()
    },
    **{f"sentences_{b}": f"test sentences with {lo}-{hi} source words" for b, (lo, hi) in BANDS.items()},
    "vae_kl": "sentence VAE: KL(q(z|x) || p(z)), nats per sentence",
    "vae_active_units": "sentence VAE: active units (of the code's 32)",
    "vae_nll": "sentence VAE: importance-sampled -log p(x), nats per sentence",
    "vae_nll_per_token": "sentence VAE: importance-sampled -log p(x), nats per token",
    "vae_reconstruction_bleu": "sentence VAE: BLEU of the reconstructions (the mean code, beam 4)",
    "homotopy_distinct": "sentence VAE: distinct sentences among the 7 decoded along the path between two codes",
}


def claims(n: dict[str, float]) -> dict[str, bool]:
    return {
        "attention translates better than the fixed-size code (BLEU and nats per token)": n["bleu_attention"]
        > n["bleu_fixed"]
        and n["nats_attention"] < n["nats_fixed"],
        "the fixed code's BLEU falls as the sources grow longer (short > middle > long)": n["bleu_fixed_short"]
        > n["bleu_fixed_middle"]
        > n["bleu_fixed_long"],
        "the sentence VAE uses its code (KL over 1 nat per sentence) and the path between two codes decodes to "
        "at least 3 distinct sentences": n["vae_kl"] > 1 and n["homotopy_distinct"] >= 3,
    }


def answer(n: dict[str, float]) -> str:
    ratio = {b: n[f"bleu_fixed_{b}"] / max(n[f"bleu_attention_{b}"], 1e-9) for b in BUCKET_NAMES}
    return (
        f"On {n['test_sentences']} unseen sentences, the model that squeezes each German sentence into one "
        f"vector of 256 numbers scores {n['bleu_fixed']:.1f} BLEU ({n['nats_fixed']:.2f} nats per token); the "
        f"same encoder and decoder with attention score {n['bleu_attention']:.1f} ({n['nats_attention']:.2f}). "
        f"By source length the fixed code scores {n['bleu_fixed_short']:.1f}, {n['bleu_fixed_middle']:.1f} and "
        f"{n['bleu_fixed_long']:.1f} BLEU on 1-10, 11-15 and 16 or more words ({n['sentences_long']} sentences), "
        f"attention {n['bleu_attention_short']:.1f}, {n['bleu_attention_middle']:.1f} and "
        f"{n['bleu_attention_long']:.1f}: the fixed code keeps {100 * ratio['short']:.0f} %, "
        f"{100 * ratio['middle']:.0f} % and {100 * ratio['long']:.0f} % of attention's BLEU. "
        + (
            f"The sentence VAE keeps {n['vae_kl']:.1f} nats per sentence in its code "
            if n["vae_kl"] > 1
            else f"The sentence VAE keeps only {n['vae_kl']:.2f} nats per sentence in its code: its decoder learned "
            f"to do without it (posterior collapse, the difficulty Bowman et al. met; KL warm-up and word dropout did "
            f"not prevent it at this training length) "
        )
        + f"({n['vae_active_units']} active units of 32), importance-sampled -log p(x) {n['vae_nll']:.1f} nats "
        f"per sentence ({n['vae_nll_per_token']:.2f} per token); the 7 points on the line between two test "
        f"sentences' codes decode to {n['homotopy_distinct']} distinct sentences (the figure)."
    )


# %% [markdown]
# ## The models: trained by the benchmark, or here


# %%
def train(name: str, data, tiny: bool) -> aekit.Translator:
    family, code = {"attention": ("seq2seq", "attention"), "fixed": ("seq2seq", "fixed"),
                    "sequence-vae": ("sequence-vae", "gaussian")}[name]  # fmt: skip
    size = dict(embedding_size=64, layers=1, heads=4, feedforward=128, vocab_size=1000) if tiny else {}
    if family == "sequence-vae":  # a GRU decoder with word dropout and free bits keeps using the code
        size = dict(embedding_size=64, gru_hidden=64, vocab_size=1000) if tiny else {}
        size["architecture"] = "gru"
    settings = aekit.SequenceConfig(family=family, code=code, batch_tokens=1024, **size)
    config = aekit.TrainConfig(
        epochs=6 if tiny else 3,
        lr=3e-3 if tiny else 5e-4,
        lr_schedule="cosine",
        clip_grad_norm=1.0,
        device="cpu",
        penalty_warmup_epochs=1.0 if family == "sequence-vae" else 0.0,  # KL warm-up (Bowman et al. 2016)
    )
    model, tokenizer, _ = aekit.train_sequence_model(settings, config, *data, progress=not tiny)
    return aekit.Translator(model, tokenizer, beam=1 if tiny else 4)


def translators(root: Path, models: Path | None, tiny: bool) -> tuple[dict[str, aekit.Translator], str]:
    if models is not None and not tiny:
        made = "the models in --models (docs/sequences.md: how each was trained)"
        return {m: aekit.Translator.load(models / m, beam=4) for m in MODELS}, made
    german, english = load_multi30k("de-en", "train", root)
    val_german, val_english = load_multi30k("de-en", "val", root)
    if tiny:  # 2 000 pairs of at most 12 German words
        short = [i for i, s in enumerate(german) if len(s.split()) <= 12][:2000]
        german, english = [german[i] for i in short], [english[i] for i in short]
        val_german, val_english = val_german[:200], val_english[:200]
    found = {m: train(m, (german, english, val_german, val_english), tiny) for m in MODELS[:2]}
    found["sequence-vae"] = train("sequence-vae", (english, None, val_english, None), tiny)
    return found, f"trained here on {len(german)} Multi30K pairs"


# %% [markdown]
# ## Translate, bucket by source length, interpolate


# %%
def measure(root: Path, models: Path | None, tiny: bool):
    found, made = translators(root, models, tiny)
    german, english = load_multi30k("de-en", "test_2016_flickr", root)
    if tiny:
        german, english = german[:150], english[:150]
    numbers = {"test_sentences": len(german)}
    lengths = np.array([len(s.split()) for s in german])
    for name in ("attention", "fixed"):
        outputs = found[name](german)
        numbers[f"bleu_{name}"] = corpus_scores(outputs, english)["bleu"]
        numbers[f"nats_{name}"] = found[name].nll(german, english)["nats_per_token"]
        for bucket, (low, high) in BANDS.items():
            chosen = np.flatnonzero((lengths >= low) & (lengths <= high))
            numbers[f"sentences_{bucket}"] = len(chosen)
            scores = corpus_scores([outputs[i] for i in chosen], [english[i] for i in chosen])
            numbers[f"bleu_{name}_{bucket}"] = scores["bleu"]
    vae = found["sequence-vae"]
    measured = importance_sampled_nll(vae, english, samples=20 if tiny else 100)
    numbers.update(
        vae_kl=measured["kl_per_sentence"],
        vae_active_units=measured["active_units"],
        vae_nll=measured["is_nll_per_sentence"],
        vae_nll_per_token=measured["is_nll_per_token"],
        vae_reconstruction_bleu=corpus_scores(vae(english), english)["bleu"],
    )
    pair = (english[0], english[3])
    homotopy = vae.interpolate(*pair, steps=7)
    numbers["homotopy_distinct"] = len(set(homotopy))
    return numbers, {"homotopy": homotopy, "ends": pair}, made


# %% [markdown]
# ## The figure


# %%
def draw(numbers, shown):
    with style():
        fig = new_figure(11, 4.2)
        left, right = fig.subplots(1, 2, width_ratios=(1, 1.5))
        x = np.arange(len(BANDS))
        for offset, name in ((-0.2, "attention"), (0.2, "fixed")):
            values = [numbers[f"bleu_{name}_{b}"] for b in BUCKET_NAMES]
            left.bar(x + offset, values, width=0.4, label=f"{name} code ({numbers[f'bleu_{name}']:.1f} overall)")
        left.set_xticks(x, [f"{lo}-{hi if hi < 100 else ''} words\n({numbers[f'sentences_{b}']})"
                            for b, (lo, hi) in BANDS.items()])  # fmt: skip
        left.set_ylabel("BLEU (test_2016_flickr)")
        left.set_title("German -> English, by source length")
        left.legend(loc="lower left", fontsize=8)
        right.axis("off")
        lines = [f"{i / 6:.2f}  {s}" for i, s in enumerate(shown["homotopy"])]
        right.text(0, 1, "sentence VAE: decoding (1 - t) z_a + t z_b\n\n" + "\n".join(lines),
                   va="top", fontsize=8, family="monospace", wrap=True)  # fmt: skip
        right.text(0, 0, f"a = {shown['ends'][0]}\nb = {shown['ends'][1]}", va="bottom", fontsize=8)
        fig.suptitle("the fixed-size code is an autoencoder bottleneck; attention removes it")
    return fig


# %%
def main(size: str = "full", out_dir=None, data_dir=None, models: str | Path | None = None) -> dict:
    run = Run(NAME, size, out_dir)
    root = Path(data_dir or os.environ.get("AEKIT_DATA_DIR") or ".")
    if not (root / "multi30k").is_dir():
        raise FileNotFoundError(f"multi30k/ not found under {root}: pass --data-dir (or set AEKIT_DATA_DIR)")
    numbers, shown, made = measure(root, Path(models) if models else None, run.tiny)
    return run.finish(draw(numbers, shown), numbers, LABELS, claims, answer, f"Multi30K de-en; {made}")


# %%
if __name__ == "__main__":
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--models", default=None, help="folder of models saved by bench/translation.py --save")
    chosen, _ = extra.parse_known_args()
    command_line(lambda **kw: main(**kw, models=chosen.models), __doc__.splitlines()[0])
