"""Offline rooms: a bundle folder with every course file (and, on request, GPT-2's weights)
written on a machine with a network, and seeded into the caches of machines without one.

It sits above both ``assets`` (course files) and ``pretrained`` (models), so that neither
has to know about the other.
"""

from __future__ import annotations

import json
from pathlib import Path

from gpt2course import assets
from gpt2course.files import CheckpointError, atomic_copy, atomic_write_text, sha256_of
from gpt2course.pretrained.convert import CONFIG_FILE, HUB_REPOS, WEIGHTS_FILE
from gpt2course.pretrained.hub import (
    PUBLISHED_WEIGHTS_SHA256,
    _from_hub,
    _place_in_hub_cache,
    check_hub_entry,
)
from gpt2course.pretrained.safetensors_file import SafetensorsFile


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
        written += [
            atomic_copy(weights, out / WEIGHTS_FILE),
            atomic_copy(config, out / CONFIG_FILE),
        ]
        revision = weights.parent.name  # the snapshot folder is named by the commit
        manifest = {"repo": HUB_REPOS[key], "revision": revision, "sha256": _manifest_entry(out)}
        text = json.dumps(manifest, indent=2) + "\n"
        written.append(atomic_write_text(out / "manifest.json", text))
    return written


# One model folder of a bundle, checked: (repo, revision, sha256 of each file), what ``seed``
# will place in the hub cache.
Checked = tuple[str, str, dict[str, str]]


def _refuse(folder: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{folder}: {why}; nothing was imported. Rebuild the bundle with `assets bundle`"
    )


def check_model_bundle(folder: Path) -> Checked:
    """Check one ``models/<name>/`` folder without writing anything: a model the course knows,
    a manifest naming only a commit hash and the two model files, regular files inside the
    bundle with those hashes, and, where the course knows it, the published weights hash."""
    key = folder.name
    if key not in HUB_REPOS:
        raise _refuse(folder, f"not a model the course knows ({', '.join(HUB_REPOS)})")
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise _refuse(folder, "no manifest.json")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _refuse(folder, f"manifest.json is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise _refuse(folder, "manifest.json is not a JSON object")
    repo = manifest.get("repo", HUB_REPOS[key])
    if repo != HUB_REPOS[key]:
        raise _refuse(folder, f"manifest.json names repo {repo!r}, expected {HUB_REPOS[key]!r}")
    sha, revision = manifest.get("sha256"), manifest.get("revision")
    try:
        check_hub_entry(repo, revision, sha)
    except CheckpointError as e:
        raise _refuse(folder, f"manifest.json: {e}") from None
    root = folder.resolve()
    for fname in sha:
        f = folder / fname
        if f.is_symlink() or not f.is_file() or f.resolve().parent != root:
            raise _refuse(folder, f"{fname} is missing or not a regular file in the bundle")
    got = _manifest_entry(folder)
    bad = [f for f in sha if got[f] != sha[f]]
    if bad:
        raise _refuse(folder, f"{', '.join(bad)} missing or corrupt (sha256 mismatch)")
    published = PUBLISHED_WEIGHTS_SHA256.get(key)
    if published is not None and got[WEIGHTS_FILE] != published:
        raise _refuse(
            folder,
            f"{WEIGHTS_FILE} is not {HUB_REPOS[key]}'s published file (sha256 "
            f"{got[WEIGHTS_FILE][:12]}…, published {published[:12]}…)",
        )
    try:
        SafetensorsFile(folder / WEIGHTS_FILE)
    except CheckpointError as e:
        raise _refuse(folder, str(e)) from None
    return repo, revision, dict(sha)


def check_models(src: Path) -> dict[Path, Checked]:
    """Every model folder of ``src`` (a bundle's ``models/``), checked; raises on the first bad one."""
    folders = sorted(p for p in Path(src).iterdir() if p.is_dir() or p.is_symlink())
    return {p: check_model_bundle(p) for p in folders}


def seed_models(src: Path) -> list[str]:
    """Place the models of an offline bundle (``src/<name>/``) in the hub cache, verified, so
    that ``load_pretrained(name)`` works with ``HF_HUB_OFFLINE=1``. Returns the names seeded.

    Every folder is checked before anything is written. The weights of a size whose published
    hash the course does not know are taken as the bundle gives them (``unverified(names)``).
    """
    return _place_models(check_models(src))


def _place_models(checked: dict[Path, Checked]) -> list[str]:
    for folder, (repo, revision, sha) in checked.items():
        _place_in_hub_cache(repo, revision, folder, sha)
    return [folder.name for folder in checked]


def unverified(names: list[str]) -> list[str]:
    """The model names among ``names`` whose weights the course cannot check against a
    published hash (seeded as the bundle gives them)."""
    return [n for n in names if n in HUB_REPOS and n not in PUBLISHED_WEIGHTS_SHA256]


def check_bundle_dest(dest: str | Path) -> Path:
    """``dest`` as a Path, or ``ValueError`` if it is the course's cache: each file would be
    copied onto itself, the bundle overwriting what it reads."""
    dest = Path(dest)
    if dest.resolve() == assets.cache_dir().resolve():
        raise ValueError(
            f"{dest} is the course's own cache, which the bundle is read from; "
            "bundle into another folder, e.g. ./gpt2course-bundle"
        )
    return dest


def bundle(dest: str | Path, models: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """Write every asset (and, on request, pretrained models) to ``dest`` for an offline room."""
    dest = check_bundle_dest(dest)  # atomic_copy makes the folder
    written = [atomic_copy(assets.fetch(name), dest / name) for name in assets.ASSETS]
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
        if n not in missing and sha256_of(src / n) != assets.ASSETS[n].sha256
    ]
    found = (("missing", missing), ("wrong sha256 (corrupt copy?)", bad))
    parts = [f"{what}: {', '.join(names)}" for what, names in found if names]
    if parts:
        raise assets.AssetError(
            f"the bundle in {src} is incomplete; {'; '.join(parts)}. Nothing was imported."
        )
    # Check the models too before writing anything, so a refusal really imported nothing.
    models = check_models(src / "models") if (src / "models").is_dir() else {}
    for name in assets.ASSETS:
        assets._install_copy(src / name, assets.path_of(name), assets.ASSETS[name].sha256)
    assets.ensure_tiktoken_files()
    return list(assets.ASSETS) + _place_models(models)
