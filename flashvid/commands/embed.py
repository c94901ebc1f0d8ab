"""``flashvid embed``: per-video features of a checkpoint's backbone (:mod:`flashvid.embed`) to .npy + an index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .config import ConfigError
from .runs import existing_checkpoint, load_classifier, model_target, write_json

if TYPE_CHECKING:
    from omegaconf import DictConfig


def run_embed(cfg: "DictConfig") -> int:
    """``flashvid embed ckpt_path=... inputs=[...] | folder=DIR | list_file=CSV out=DIR``."""
    from omegaconf import OmegaConf

    from ..data.sources import collect_paths, read_csv, scan_class_folders
    from ..embed import embed_videos, write_embeddings

    ckpt = existing_checkpoint(cfg.ckpt_path)
    given = [k for k in ("inputs", "folder", "list_file") if cfg.get(k) not in (None, "", [])]
    if len(given) != 1:
        raise ConfigError("give exactly one of inputs=[files,folders] (unlabelled), folder=DIR (class sub-folders: "
                          f"labelled) or list_file=CSV (path,label rows); got {given or 'none'}")
    labels: list[str] | None = None
    if cfg.get("inputs") not in (None, "", []):
        raw = OmegaConf.to_container(cfg.inputs, resolve=True) if OmegaConf.is_config(cfg.inputs) else cfg.inputs
        samples = collect_paths([str(x) for x in (raw if isinstance(raw, list) else [raw])])
    elif cfg.get("folder"):
        samples, labels = scan_class_folders(cfg.folder, what="folder")
    else:
        samples, labels = read_csv(cfg.list_file, cfg.get("root"))
    model = load_classifier(ckpt, model_target(cfg))
    features, kept, failures = embed_videos(model, samples, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                            num_clips=cfg.num_clips, num_crops=cfg.num_crops, decoder=cfg.decoder,
                                            device=cfg.device)
    feat_path, index_path = write_embeddings(cfg.out, features, kept, labels)
    if failures:
        write_json(Path(cfg.out) / "failures.json", failures)
    print(f"flashvid embed: {features.shape[0]} videos x {features.shape[1]} features -> {feat_path}, {index_path}")
    if failures:
        print(f"flashvid embed: {len(failures)} of {len(samples)} files could not be decoded: "
              f"{Path(cfg.out) / 'failures.json'}", flush=True)
        return 3
    return 0
