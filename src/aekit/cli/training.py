"""``aekit train``: train any family and write a run folder; ``--resume`` continues one.

A run folder holds ``config.json`` + ``model.safetensors`` (the model), ``train.json`` (every
setting, the data, how the values were scaled, and how the run ended), ``history.json``,
``metrics.json``, ``log.csv`` or ``tensorboard/``, ``loss_curve.png``, ``reconstructions.png`` and
``checkpoint.safetensors`` (the resumable state: weights, optimiser, counters). Every run folder
can be resumed; ``--resume`` keeps the run's settings and refuses options that contradict them.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..callbacks import Callback
from ..errors import AekitError
from .base import (
    DATA_KEYS,
    RUN_FILE,
    add_data_arguments,
    add_settings,
    arguments,
    check_fresh_output,
    command,
    complete_error,
    data_description,
    integer,
    load_data,
    option_name,
    print_report,
    run_outcome,
    save_figure,
    settings_from_args,
)
from .text import add_text_arguments

# what a run writes: --force on a run folder removes these, and nothing else
RUN_OUTPUTS = (
    "config.json", "model.safetensors", RUN_FILE, "history.json", "metrics.json", "log.csv", "loss_curve.png",
    "reconstructions.png", "checkpoint.safetensors", "tensorboard", "tokenizer.json",
)  # fmt: skip
# options that may change when a run resumes: where and how fast it trains, how long, what it shows
CHANGEABLE_ON_RESUME = {
    "epochs", "max_steps", "patience", "restore_best", "compile", "channels_last", "flush_denormal", "device",
    "checkpoint_every", "log_every", "logger", "data_dir", "no_download", "no_progress",
}  # fmt: skip
RECORDED_ELSEWHERE = {"test_data", "init", "stream", "option", "overrides"}
TEXT_KEYS = ("pair", "target_data")


def _add_train(parser: argparse.ArgumentParser) -> None:
    from ..config import TrainConfig
    from ..families import FamilyConfig
    from ..text.families import SequenceConfig

    parser.add_argument("--out", required=True, type=Path, metavar="RUN", help="the run folder to write")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint with its own settings; --epochs, --max-steps and "
        "--patience may extend it, options that contradict the run are refused",
    )
    parser.add_argument("--force", action="store_true", help="replace the run (or other files) already in --out")
    parser.add_argument(
        "--init",
        type=Path,
        metavar="MODEL",
        help="start from the weights of a trained model of the same architecture (fine-tuning, e.g. a blind "
        "denoiser from a fixed-level one); a first layer that takes more input channels here (a noise map) "
        "starts with zero weights on them",
    )
    add_data_arguments(parser, required=False)
    add_text_arguments(parser)
    parser.add_argument(
        "--stream",
        action="store_true",
        help="stream a .npy file (or a folder of .npy shards) too big for memory, in shuffled chunks",
    )
    patches = parser.add_argument_group("patches (image restoration: denoise, super-resolve, inpaint, colorize)")
    patches.add_argument(
        "--patch-size", type=integer(1), metavar="PIXELS", help="train on random square crops of --data"
    )
    patches.add_argument("--patches", type=integer(1), default=65536, metavar="N", help="how many crops")
    patches.add_argument(
        "--image-mode", choices=["grey", "rgb"], default="grey", help="grey: luma of every image; rgb: colour only"
    )
    parser.add_argument(
        "--test-data",
        metavar="SOURCE",
        help="evaluate on this after training (default: the test split of a named dataset)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes started by torchrun (gloo on CPU, NCCL on GPU)",
    )
    model = parser.add_argument_group("model")
    add_settings(model, FamilyConfig)
    model.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a family option, e.g. noise=gaussian, level=0.5 (denoising), sparsity=kl, rho=0.05, weight=0.1, "
        "beta=4; `aekit list` shows every family's options",
    )
    model.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PART.KEY=VALUE",
        dest="overrides",
        help="override any part option after the preset, e.g. latent.noise_std=4 or likelihood.learn_sigma=shared",
    )
    sequences = parser.add_argument_group(
        "sequence models (--family seq2seq, sequence, sequence-denoising, sequence-vae; --code-size is shared)"
    )
    add_settings(sequences, SequenceConfig, skip=("family", "code_size"))
    training = parser.add_argument_group("training")
    add_settings(training, TrainConfig)
    training.add_argument("--no-progress", action="store_true", help="hide the progress bar")


@command(
    "train",
    "train any family on any supported data and write a run folder",
    """examples:
  aekit train --family vae --data fashion-mnist --code-size 16 --out runs/vae     # epochs: auto
  aekit train --family denoising -o noise=gaussian -o level=0.5 --data mnist --out runs/dae
  aekit train --family sparse -o sparsity=kl -o rho=0.05 --data x.npy --code-size 64 --out runs/sparse
  aekit train --family contractive --network conv --channels 32,64 --data images/ --out runs/cae
  aekit train --family vae --data fashion-mnist --epochs 30 --out runs/vae30
  aekit train --resume --out runs/vae30 --epochs 50     # continue that run to 50 epochs
  aekit train --family vae --data fashion-mnist --logger tensorboard --out runs/tb   # tensorboard --logdir runs
  aekit train --stream --data big.npy --family vae --out runs/big    # bigger than memory
  torchrun --standalone --nproc_per_node 4 -m aekit.cli train --distributed --data fashion-mnist \\
      --family vae --batch-size 512 --out runs/ddp      # 4 data-parallel processes, global batch 512
  aekit train --family seq2seq --data multi30k --pair de-en --out runs/de-en   # translation
  aekit train --family seq2seq --data train.de --target-data train.en --code fixed --out runs/fixed
  aekit train --family sequence-vae --data sentences.txt --out runs/svae      # sentence VAE

--epochs auto (the default) trains until the validation loss has not improved for --patience
epochs, within --max-steps optimisation steps, and keeps the best epoch's weights; train.json says
when and why the run stopped. The run folder holds config.json + model.safetensors (the model),
train.json, history.json, metrics.json, log.csv (or tensorboard/), loss_curve.png,
reconstructions.png and checkpoint.safetensors (what --resume continues from).""",
)
@arguments(_add_train)
def cmd_train(args: argparse.Namespace) -> int:
    from .. import distributed

    topology = distributed.init_from_env() if args.distributed else distributed.Topology()
    created = not args.out.exists()
    try:
        return _train(args, topology)
    except AekitError:
        if created and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # a bad input leaves no empty run folder behind
        raise
    finally:
        if args.distributed:
            distributed.shutdown()


def _train(args: argparse.Namespace, topology: Any) -> int:
    import torch

    from ..config import ModelConfig, TrainConfig, apply_overrides
    from ..families import FamilyConfig
    from ..files import remove_stale_temporaries
    from ..io import load_model, load_state, read_model_config
    from ..model import Autoencoder
    from ..text.families import is_sequence_family

    run_dir: Path = args.out
    checkpoint = None
    if topology.is_main and run_dir.is_dir():
        for stale in remove_stale_temporaries(run_dir):
            print(f"removed {stale.name}, left by an interrupted write")
    if args.resume:
        checkpoint = _prepare_resume(args, run_dir)
    else:
        if not args.data:
            raise AekitError("no training data", "--data is required unless --resume is given", "add --data SOURCE")
        if topology.is_main:
            _clear_for_new_run(run_dir, args.force)
    train_config: TrainConfig = settings_from_args(args, TrainConfig, dynamic_binarization=args.binarize == "dynamic")
    if is_sequence_family(args.family):
        from .text import train_sequences

        if args.option:
            key = args.option[0].split("=", 1)[0].strip().replace("_", "-")
            raise AekitError(
                f"-o {args.option[0]} with --family {args.family}",
                "the sequence families take their settings as flags, not -o options",
                f"write --{key} VALUE (aekit train --help lists them under 'text')",
            )

        record = {"model": {"family": args.family}, "data": data_description(args)}
        return train_sequences(args, run_dir, checkpoint, topology, record, train_config)
    if args.pair or args.target_data:
        raise AekitError(
            f"--pair/--target-data with --family {args.family}",
            "they describe text",
            "use a sequence family (seq2seq, sequence, sequence-denoising, sequence-vae)",
        )
    family = settings_from_args(args, FamilyConfig, family_options=_family_options(args))
    x_train, data_shape, name, scaling = _training_data(args, train_config)
    test = None
    if args.test_data:
        test = load_data(args, source=args.test_data, split="test").x
    elif args.data in ("mnist", "fashion-mnist") and args.split == "train":
        test = load_data(args, split="test").x
    if args.resume and (run_dir / "config.json").is_file():
        config = read_model_config(run_dir)
    else:
        config = family.build(data_shape)
        if args.overrides:
            config = ModelConfig.from_dict(apply_overrides(config.to_dict(), args.overrides))
    torch.manual_seed(train_config.seed)
    model = Autoencoder.from_config(config)
    if args.init is not None and checkpoint is None:
        load_state(model, load_model(args.init).state_dict(), f"--init {args.init}", widen_inputs=True)
    record = {
        "model": family.to_dict(),
        "overrides": args.overrides,
        "train": train_config.to_dict(),
        "data": data_description(args),
        "scaling": scaling,
        "stream": args.stream,
        "test_data": args.test_data,
        "init": None if args.init is None else str(args.init),
    }
    if topology.is_main:
        n_params = sum(p.numel() for p in model.parameters())
        processes = f", {topology.world} processes" if topology.distributed else ""
        print(f"{model.family} autoencoder, {n_params:,} parameters, data {name} {tuple(x_train.shape)}{processes}")
        print(f"data values: {scaling}")
        if checkpoint is not None:
            print(f"resuming from {checkpoint}")
    metrics = train_run(run_dir, model, x_train, test, train_config, not args.no_progress, checkpoint, record, topology)
    if topology.is_main:
        print(f"stopped: {metrics['stop_detail']}; best epoch {metrics['best_epoch']}")
        if "test" in metrics:
            print_report("test set:", metrics["test"])
        print(f"run written to {run_dir}/ (model, metrics.json, loss_curve.png, reconstructions.png)")
    return 0


def _family_options(args: argparse.Namespace) -> dict[str, Any]:
    from ..config import parse_value

    options: dict[str, Any] = {}
    for item in args.option:
        if "=" not in item:
            raise AekitError(f"bad --option {item!r}", "expected KEY=VALUE", "e.g. -o noise=gaussian")
        key, value = item.split("=", 1)
        options[key.strip()] = parse_value(value)
    return options


def _training_data(args: argparse.Namespace, train_config: Any) -> tuple[Any, tuple, str, str]:
    """(x_train, example shape, a name, what was done to the values) from the data options."""
    if args.patch_size:
        from ..data.patches import load_patches

        x = load_patches(args.data, args.patch_size, args.patches, args.image_mode, seed=train_config.seed)
        name = f"{args.patches} random {args.patch_size}-pixel crops of {args.data}"
        return x, x.shape[1:], name, "8- and 16-bit pixels divided by 255 and 65535"
    if args.stream:
        from ..data.streaming import ArrayFile

        x = ArrayFile(args.data, scale="none" if args.scale == "none" else "auto")
        scaled = x.scale == "auto" and x.dtype in (np.uint8, np.uint16)
        scaling = f"{x.dtype} divided by {np.iinfo(x.dtype).max}" if scaled else f"{x.dtype} kept as it is"
        return x, x.example_shape, f"{args.data} (streamed)", f"{scaling} (scale {x.scale})"
    dataset = load_data(args)
    return dataset.x, dataset.data_shape, dataset.name, dataset.scaling


def _clear_for_new_run(run_dir: Path, force: bool) -> None:
    """Refuse a folder that already holds files unless --force; with --force remove an earlier
    run's files (only those a run writes)."""
    if (run_dir / RUN_FILE).is_file() and not force:
        raise AekitError(
            f"{run_dir} holds a run already",
            "a new run would replace it",
            "add --resume to continue it, --force to replace it, or choose another --out",
        )
    check_fresh_output(run_dir, force)
    if force:
        for name in RUN_OUTPUTS:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def _prepare_resume(args: argparse.Namespace, run_dir: Path) -> Path | None:
    """Put the run's recorded settings on ``args``, refusing explicit options that contradict them;
    returns the checkpoint to continue from (None: the run stopped before its first checkpoint)."""
    from ..callbacks import CHECKPOINT_FILE, read_checkpoint_meta
    from ..config import TrainConfig, settings_of
    from ..families import FamilyConfig
    from ..io import read_json
    from ..text.families import SequenceConfig

    record_path = run_dir / RUN_FILE
    if not record_path.is_file():
        raise AekitError(
            f"{run_dir} holds no run to resume",
            f"there is no {RUN_FILE} in it",
            "check --out, or train a new run there without --resume",
        )
    record = read_json(record_path, "run record")
    recorded: dict[str, Any] = {**record.get("train", {}), **record.get("data", {})}
    model = record.get("model") or {"family": record.get("family")}
    recorded.update({k: v for k, v in model.items() if k != "family_options"})
    recorded["option"] = model.get("family_options", {})
    recorded.update(record.get("sequence") or {})
    recorded.update(record.get("text") or {})
    for key in RECORDED_ELSEWHERE - {"option"}:
        recorded[key] = record.get(key)
    given = _given_values(args)
    conflicts = [
        f"{_shown_option(key)} {_shown(value)} (the run: {_shown(recorded[key])})"
        for key, value in given.items()
        if key in recorded and key not in CHANGEABLE_ON_RESUME and _differs(value, recorded[key])
    ]
    if conflicts:
        raise AekitError(
            f"--resume continues {run_dir} with its own settings, and these options differ: {'; '.join(conflicts)}",
            "a resumed run must compute what the run computed",
            "drop them, or train a new run in another --out",
        )
    # the run's settings, then what may change
    fields = [*settings_of(TrainConfig), *settings_of(FamilyConfig), *settings_of(SequenceConfig)]
    for key in (*DATA_KEYS, *TEXT_KEYS, *(f.name for f in fields)):
        if key in recorded and not (key in CHANGEABLE_ON_RESUME and key in given):
            setattr(args, key, recorded[key])
    args.option = [f"{k}={_json(v)}" for k, v in recorded["option"].items()]
    args.overrides, args.test_data = record.get("overrides") or [], record.get("test_data")
    args.stream, args.init = bool(record.get("stream")), None  # the weights come from the checkpoint
    checkpoint = run_dir / CHECKPOINT_FILE
    if not checkpoint.is_file():
        print(f"{run_dir} has no checkpoint (it stopped before its first epoch ended): training it from the start")
        return None
    done = read_checkpoint_meta(checkpoint)["epoch"]
    if args.epochs != "auto" and int(args.epochs) <= done and "epochs" in given:
        raise AekitError(
            f"--epochs {args.epochs} would end before where {run_dir} is",
            f"the run has trained {done} epochs",
            f"give --epochs above {done} (or auto) to train it longer",
        )
    return checkpoint


def _given_values(args: argparse.Namespace) -> dict[str, Any]:
    """The options the user wrote, by destination, as the run records them."""
    given = {key: getattr(args, key) for key in getattr(args, "explicit", set()) if hasattr(args, key)}
    if "option" in given:
        given["option"] = _family_options(args)
    for key in ("init",):
        if given.get(key) is not None:
            given[key] = str(given[key])
    given.pop("resume", None)
    given.pop("out", None)
    return given


def _differs(given: Any, recorded: Any) -> bool:
    return _json(given) != _json(recorded)


def _json(value: Any) -> str:
    import json

    return json.dumps(value if not isinstance(value, tuple) else list(value), sort_keys=True, default=str)


def _shown_option(key: str) -> str:
    return {"option": "-o", "overrides": "--set"}.get(key, option_name(key))


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


class _RecordRun(Callback):
    """Writes ``config.json`` and ``train.json`` when training starts (after the data have been
    checked): a run interrupted before its first checkpoint can be started again with --resume."""

    def __init__(self, run_dir: Path, model: Any, record: dict[str, Any]) -> None:
        self.run_dir, self.model, self.record = run_dir, model, record

    def on_fit_start(self, loop: Any) -> None:
        from ..config import FORMAT_VERSION
        from ..io import write_json

        write_json(
            self.run_dir / "config.json", {"format_version": FORMAT_VERSION, "model": self.model.config.to_dict()}
        )
        write_json(self.run_dir / RUN_FILE, {**self.record, "result": None})


def train_run(
    run_dir: Path,
    model: Any,
    x_train: Any,
    x_test: np.ndarray | None,
    train_config: Any,
    progress: bool,
    resume: Path | None,
    record: dict[str, Any],
    topology: Any = None,
) -> dict[str, Any]:
    """Train, then write the model, the run record, history, metrics and figures into ``run_dir``;
    returns the metrics. ``x_train`` is an array or a streamed :class:`ArrayFile`. The other
    processes of a distributed run train without writing anything."""
    from ..io import save_model, write_json
    from ..metrics import reconstruction_report
    from ..plots import loss_curve
    from ..train import Trainer

    is_main = topology is None or topology.is_main
    callbacks = [] if resume is not None or not is_main else [_RecordRun(run_dir, model, record)]
    trainer = Trainer(model, train_config, run_dir=run_dir, progress=progress, callbacks=callbacks)
    result = trainer.fit(x_train, resume=resume)
    if resume is not None and len(result.history) == result.start_epoch:
        raise complete_error(run_dir, result)
    if not is_main:
        return {}
    save_model(model, run_dir)
    outcome = run_outcome(result)
    write_json(run_dir / RUN_FILE, {**record, "train": train_config.to_dict(), "result": outcome})
    metrics: dict[str, Any] = {
        "family": model.family,
        "code_size": model.code_size,
        **outcome,
        "train_seconds": round(result.seconds, 2),
        "samples_per_second": round(result.samples_per_second, 1),
        "device": str(trainer.device),
        "final_train": result.history[-1]["train"],
        "final_val": result.history[-1]["val"],
        "best_val": result.best_val,
    }
    if x_test is not None:
        metrics["test"] = reconstruction_report(model, x_test)
    write_json(run_dir / "history.json", result.history)
    write_json(run_dir / "metrics.json", metrics)
    save_figure(loss_curve(result.history, f"{model.family} autoencoder"), run_dir / "loss_curve.png")
    shown = _first_rows(x_test if x_test is not None else x_train, 12)
    save_figure(reconstruction_figure(model, shown, trainer.device), run_dir / "reconstructions.png")
    return metrics


def reconstruction_figure(model: Any, shown: np.ndarray, device: Any) -> Any:
    """Originals above reconstructions; for a model with a corruption, of the corrupted inputs
    (seeded), shown between them."""
    import torch

    from ..plots import image_rows, reconstruction_grid

    x = torch.as_tensor(shown).to(device)
    with torch.no_grad():
        if model.corruption is None:
            recon = model.reconstruct(x).cpu().numpy()
            return reconstruction_grid(shown, recon, f"{model.family}: reconstructions")
        corrupted = model.corruption.corrupt(x, torch.Generator(device=device).manual_seed(0))
        recon = model.reconstruct(corrupted).cpu().numpy()
    seen = corrupted[:, : x.shape[1]].cpu().numpy()  # without a mask channel
    rows = [shown, seen, recon]
    return image_rows(rows, ["original", "corrupted", "reconstruction"], f"{model.family}: reconstructions")


def _first_rows(x: Any, count: int) -> np.ndarray:
    from ..data.streaming import ArrayFile

    rows = x.read(0, min(count, len(x))) if isinstance(x, ArrayFile) else x[:count]
    return rows.toarray() if hasattr(rows, "toarray") else np.asarray(rows)  # sparse rows: documents
