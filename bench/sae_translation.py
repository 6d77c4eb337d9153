"""A sparse dictionary inside a real network: the shipped De->En translation Transformer.

The residual stream after the middle decoder layer (``--module``, default
``decoder.layers.layers.1`` of 3) is collected over the Multi30K training sentences, teacher
forced, one row per decoder position that predicts a token (``aekit.sae.sequence_host``), and a
dictionary (``sae-topk`` at each ``--k``, ``--expansion`` times the model width) is trained on it.
On the validation sentences: fraction of variance unexplained, L0, dead and dense latents,
shrinkage (``aekit.metrics.dictionary_report``), and the loss recovered (``aekit.sae.loss_recovered``):
the translator's nats per target token clean, with the layer's output replaced by the
dictionary's reconstruction, and with it zeroed. Writes a feature browser over the validation
positions (each row's context: the target prefix up to the position, the token in brackets) for
the largest k to ``--report``.

    python bench/sae_translation.py --data-dir /work/shared/data --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import add_clip_option, write_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding multi30k/")
    parser.add_argument("--model", default="translate-de-en", help="shipped name or run folder (default: %(default)s)")
    parser.add_argument("--module", default="decoder.layers.layers.1", help="hooked module (default: %(default)s)")
    parser.add_argument("--k", default="16,32", help="TopK sparsities (default: %(default)s)")
    parser.add_argument("--expansion", type=float, default=8.0, help="latents per model dimension (default: 8)")
    parser.add_argument("--epochs", type=int, default=2, help="passes over the activations (default: 2)")
    parser.add_argument("--sentences", type=int, default=29000, help="training sentences used (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    add_clip_option(parser)
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--report", type=Path, default=Path("runs/sae-translation-report"), help="browser folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sae_translation.json")
    args = parser.parse_args()

    import torch

    import aekit
    from aekit.metrics import dictionary_report
    from aekit.sae import collect, loss_recovered, sequence_host, write_report
    from aekit.text.corpus import load_multi30k
    from aekit.text.pipeline import Translator

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    translator = Translator.load(args.model)
    model, tokenizer = translator.model, translator.tokenizer

    def host(split: str, limit: int | None = None):
        sources, targets = load_multi30k("de-en", split, args.data_dir, download=False)
        return sequence_host(model, tokenizer, sources[:limit], targets[:limit], args.module, batch_size=64)

    train, val = host("train", args.sentences), host("val")
    folder = Path(tempfile.mkdtemp(prefix="aekit-acts-"))
    acts = collect(model, args.module, train.batches, folder / "train", forward=train.forward, keep=train.keep,
                   progress=False)  # fmt: skip
    held = collect(model, args.module, val.batches, folder / "val", forward=val.forward, keep=val.keep, progress=False)
    held_x = held.read(0, len(held))
    print(f"{len(acts)} training and {len(held)} validation positions of width {acts.shape[1]}", flush=True)

    rows = {}
    width = round(args.expansion * acts.shape[1])
    for k in [int(v) for v in args.k.split(",")]:
        torch.manual_seed(args.seed)
        sae = aekit.make_model("sae-topk", (acts.shape[1],), width, k=k)
        config = aekit.TrainConfig(
            epochs=args.epochs, batch_size=1024, lr=1e-3, lr_schedule="cosine", val_fraction=0.0, seed=args.seed,
            checkpoint_every=0, clip_grad_norm=args.clip_grad_norm,
        )  # fmt: skip
        result = aekit.Trainer(sae, config, progress=False).fit(acts)
        row = {"k": k, "width": width, "train_seconds": round(result.seconds, 1)}
        row |= {key: round(value, 4) for key, value in dictionary_report(sae, held_x).items()}
        recovered = loss_recovered(model, args.module, sae, val.batches, val.loss)
        row |= {key: round(value, 4) for key, value in recovered.items()}
        rows[f"sae-topk k={k}"] = row
        print(f"  k={k}: {row}", flush=True)

    contexts = val.contexts()  # one line per validation row, in the order collect stored them
    page = write_report(sae, held_x, args.report, contexts=contexts, latents=60, top=6, title="De->En decoder features")
    write_record(args, "sae_translation", time.perf_counter() - started, module=args.module, rows=rows)
    print(f"browser: {page}; {np.round(time.perf_counter() - started)} s", flush=True)


if __name__ == "__main__":
    main()
