"""Offline rooms: a bundle folder with every course file (and, on request, GPT-2's weights)
written on a machine with a network, and seeded into the caches of machines without one.

It sits above both ``assets`` (course files) and ``pretrained`` (models), so that neither
has to know about the other.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import assets
from .files import CheckpointError, atomic_copy, atomic_write_text, sha256_of
from .pretrained.convert import CONFIG_FILE, HUB_REPOS, WEIGHTS_FILE
from .pretrained.hub import _from_hub, _place_in_hub_cache
from .pretrained.safetensors_file import SafetensorsFile


def _manifest_entry(folder: Path) -> dict[str, str]:
    return {f: sha256_of(folder / f) for f in (WEIGHTS_FILE, CONFIG_FILE)}


def bundle_models(names: list[str], dest: Path) -> list[Path]:
    """Copy hub models (downloading them once) to ``dest/<name>/`` with a sha256 manifest."""
    dest = Path(dest)
    written = []
    for name in names:
        key = str(name).removeprefix("openai-community/")
        if key not in HUB_REPOS:
            raise ValueError(f"unknown model name {name!r}; choose from {', '.join(HUB_REPOS)}")
        weights, config = _from_hub(key)
        SafetensorsFile(weights)  # never bundle a broken file
        if config is None:
            raise CheckpointError(f"{HUB_REPOS[key]} has no {CONFIG_FILE} in the cache")
        out = dest / key
        out.mkdir(parents=True, exist_ok=True)
        for src, fname in ((weights, WEIGHTS_FILE), (config, CONFIG_FILE)):
            written.append(atomic_copy(src, out / fname))
        revision = weights.parent.name  # the snapshot folder is named by the commit
        manifest = {"repo": HUB_REPOS[key], "revision": revision, "sha256": _manifest_entry(out)}
        written.append(
            atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        )
    return written


def seed_models(src: Path) -> list[str]:
    """Place the models of an offline bundle (``src/<name>/``) in the hub cache, verified, so
    that ``load_pretrained(name)`` works with ``HF_HUB_OFFLINE=1``. Returns the names seeded."""
    src = Path(src)
    seeded = []
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        key = folder.name
        if key not in HUB_REPOS:
            raise CheckpointError(
                f"{folder}: not a model the course knows ({', '.join(HUB_REPOS)})"
            )
        mpath = folder / "manifest.json"
        if not mpath.is_file():
            raise CheckpointError(
                f"{folder} has no manifest.json; rebuild the bundle with `assets bundle`"
            )
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        got = (
            _manifest_entry(folder)
            if all((folder / f).is_file() for f in manifest["sha256"])
            else {}
        )
        if got != manifest["sha256"]:
            bad = [f for f in manifest["sha256"] if got.get(f) != manifest["sha256"][f]]
            raise CheckpointError(
                f"{folder}: {', '.join(bad)} missing or corrupt (sha256 mismatch); nothing was imported"
            )
        SafetensorsFile(folder / WEIGHTS_FILE)
        _place_in_hub_cache(
            HUB_REPOS[key], manifest.get("revision") or "0" * 40, folder, manifest["sha256"]
        )
        seeded.append(key)
    return seeded


def bundle(dest: str | Path, models: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """Write every asset (and, on request, pretrained models) to ``dest`` for an offline room."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in assets.ASSETS:
        written.append(atomic_copy(assets.fetch(name), dest / name))
    if models:
        written += bundle_models(list(models), dest / "models")
    return written


def seed(src: str | Path) -> list[str]:
    """Import an offline bundle: verify every file's hash, copy it into the cache, and place
    the tokenizer files for tiktoken. Raises ``assets.AssetError`` naming any bad or missing file."""
    src = Path(src)
    if not src.is_dir():
        raise assets.AssetError(
            f"{src} is not a folder; pass the folder that `assets bundle` wrote"
        )
    missing = [n for n in assets.ASSETS if not (src / n).is_file()]
    bad = [
        n
        for n in assets.ASSETS
        if (src / n).is_file() and sha256_of(src / n) != assets.ASSETS[n].sha256
    ]
    if missing or bad:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if bad:
            parts.append("wrong sha256 (corrupt copy?): " + ", ".join(bad))
        raise assets.AssetError(
            f"the bundle in {src} is incomplete; {'; '.join(parts)}. Nothing was imported."
        )
    imported = []
    for name in assets.ASSETS:
        assets._install_copy(src / name, assets.path_of(name), assets.ASSETS[name].sha256)
        imported.append(name)
    assets.ensure_tiktoken_files()
    if (src / "models").is_dir():
        imported += seed_models(src / "models")
    return imported
