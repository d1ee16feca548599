"""Lesson 06: export the adapter, merge it into the base model, and check the merge changes nothing.

A merge folds ``(alpha / r) * B A`` into each adapted weight, giving an ordinary model that loads
with plain ``transformers``. It is done on an unquantized (16/32-bit) copy of the base: merging
into 4-bit weights rounds the update away and loses quality. And it is done on the weights the
adapter was trained on (the run's ``model.json`` says which), as is the parity check after it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import AutoTokenizer

from qdlib.config import Config
from qdlib.evaluate import compare_table, model_metrics
from qdlib.files import atomic_dir, read_json
from qdlib.inference import decode_answer
from qdlib.model import load_with_adapter, weights_source
from qdlib.notices import quiet_hf
from qdlib.prompts import INSTRUCTIONS, answer_end, prompt_ids, render_prompt
from qdlib.remote_code import pretrained
from qdlib.runs import RunDirError
from qdlib.weights import WeightsSource


def export_adapter(adapter_dir: Path, out_dir: Path) -> Path:
    """Copy the trained adapter (safetensors, ``adapter_config.json``, tokenizer) to ``out_dir``."""
    return atomic_dir(out_dir, lambda tmp: shutil.copytree(adapter_dir, tmp, dirs_exist_ok=True))


def recorded_weights(run_dir: Path) -> WeightsSource | None:
    """The weights a run was trained on, as lesson 02 recorded them in ``model.json``: what they
    are, the GGUF file's sha256 when they came from one, the caution for its users. None when the
    run has no such record (``qd train`` writes none; runs from before qdlib recorded the sha256).
    The record keeps what the weights are, not this machine's folder for them (``path`` is empty).
    """
    record = _read_json_if(Path(run_dir) / "model.json") or {}
    if "source_sha256" not in record:
        return None
    return WeightsSource("", record["source"], record["source_detail"], record["source_sha256"],
                         record.get("source_caution", ""))  # fmt: skip


def trained_weights(cfg: Config, run_dir: Path) -> WeightsSource:
    """What the run's adapter was trained on: the run's record (:func:`recorded_weights`), else
    where ``model.name`` loads from now (:func:`qdlib.model.weights_source`, which made the record).
    """
    return recorded_weights(run_dir) or weights_source(cfg)


def check_same_weights(cfg: Config, run_dir: Path) -> WeightsSource:
    """Where ``model.name`` loads from now, once checked against the run's record: a run trained
    on a packaged GGUF is exported only on that file (the same sha256), and a run trained on other
    weights never on a GGUF. (Other changes of weights, a hub revision, are not detected.)

    They can differ on the same machine: a run trained offline on the packaged GGUF, exported
    online, would load the hub's original weights instead. Merged onto those, or compared with
    base + adapter on those, the export would not be the model that was trained and evaluated.
    """
    current = weights_source(cfg)
    recorded = recorded_weights(run_dir)
    if recorded is not None and recorded.sha256 != current.sha256:
        offline = (" (offline, HF_HUB_OFFLINE=1, and with no copy in the hub's cache, it loads "
                   "the packaged GGUF)")  # fmt: skip
        raise RunDirError(
            f"{Path(run_dir) / 'model.json'}: this run was trained on {recorded.detail}, but "
            f"model.name now loads {current.detail} ({current.kind}). An export on other weights "
            "is not the model you trained and evaluated, so nothing was merged. Export where "
            f"model.name loads the weights it was trained on{offline if recorded.sha256 else ''}, "
            "or train again on these."
        )
    return current


def merge_adapter(cfg: Config, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge the adapter into an unquantized copy of the base and save it, with the tokenizer.

    ``load_with_adapter(..., quantized=False)`` loads the base with no quantization config at all
    (4-bit training or not), so the merge is never rounded to 4 bits. An adapter in a run
    directory (``RUN/adapter``) is merged only onto the weights the run was trained on
    (:func:`check_same_weights`).
    """
    check_same_weights(cfg, Path(adapter_dir).parent)
    model = load_with_adapter(cfg, adapter_dir, quantized=False)
    merged = model.merge_and_unload()
    tokenizer = pretrained(AutoTokenizer, adapter_dir, cfg.model.trust_remote_code)

    def write(tmp: Path) -> None:
        with quiet_hf():
            merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return atomic_dir(out_dir, write)


@dataclass
class Parity:
    """How many greedy outputs are token-for-token identical between two models."""

    identical: int
    total: int
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.identical / self.total  # never 0/0: parity() refuses an empty comparison

    def __str__(self) -> str:
        return f"{self.identical}/{self.total} identical greedy outputs ({100 * self.rate:.1f}%)"


def parity(questions: list[str], reference: list[Any], candidate: list[Any]) -> Parity:
    """Compare two lists of :class:`qdlib.inference.Generation` by token ids (at least one: no
    question compared is no evidence, never 100%)."""
    if not questions:
        raise ValueError("parity: no questions to compare (export.parity_samples, eval split)")
    result = Parity(identical=0, total=len(questions))
    for q, a, b in zip(questions, reference, candidate, strict=True):
        if a.ids == b.ids:
            result.identical += 1
        else:
            result.mismatches.append({"question": q, "reference": a.text, "merged": b.text})
    return result


def plain_transformers_ids(
    model_dir: Path,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    trust_remote_code: bool = False,
) -> list[list[int]]:
    """Greedy answers from ``model_dir`` loaded in a fresh Python that never imports qdlib.

    Prompts go in the order (shortest first) and batch size that :func:`qdlib.evaluate.generate`
    uses, so both sides pad each batch the same way.
    """
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    worker = Path(__file__).with_name("standalone") / "greedy_ids.py"
    with tempfile.TemporaryDirectory() as tmp:
        request, response = Path(tmp) / "request.json", Path(tmp) / "response.json"
        request.write_text(
            json.dumps(
                {
                    "model_dir": str(model_dir),
                    "prompts": [prompts[i] for i in order],
                    "max_new_tokens": max_new_tokens,
                    "batch_size": batch_size,
                    "trust_remote_code": trust_remote_code,
                }
            ),
            encoding="utf-8",
        )
        done = subprocess.run(
            [sys.executable, "-P", str(worker), str(request), str(response)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"reloading {model_dir} with plain transformers failed:\n{done.stderr[-2000:]}"
            )
        result = json.loads(response.read_text(encoding="utf-8"))
    if result["qdlib_imported"]:
        raise RuntimeError("the plain-transformers check imported qdlib; it must not")
    ids: list[list[int]] = [[] for _ in prompts]
    for i, row in zip(order, result["ids"], strict=True):
        ids[i] = row
    return ids


def parity_with_plain_transformers(
    model_dir: Path,
    tokenizer: Any,
    questions: list[str],
    reference: list[Any],
    max_new_tokens: int,
    batch_size: int,
    language: str = "auto",
    trust_remote_code: bool = False,
) -> Parity:
    """Parity of an exported model, reloaded without qdlib, against ``reference`` generations."""
    prompts = [prompt_ids(q, tokenizer, language) for q in questions]
    ids = plain_transformers_ids(model_dir, prompts, max_new_tokens, batch_size, trust_remote_code)
    end = answer_end(tokenizer)  # the reference stopped there too
    candidate = [decode_answer(row, tokenizer, end) for row in ids]
    return parity(questions, reference, candidate)


# ---------------------------------------------------------------- model card, hub, GGUF


CARD_TEMPLATE = Path(__file__).with_name("templates") / "model_card.md"
CARD_EXAMPLE = {  # the card's example question, in the language the model was trained on
    "ko": "서울과 부산 중 인구가 더 많은 도시는?", "en": "Which has more people, Seoul or Busan?"
}  # fmt: skip
CARD_METRICS = ("format_valid", "step_count_correct", "exact_match", "content_recall", "sari")


def _card_data(cfg: Config, metrics: dict[str, Any] | None) -> ModelCardData:
    """The card's metadata block: base model, library, tags, languages, datasets, scores."""
    specs = [cfg.data.train_file] if cfg.data.train_file else [s.spec for s in cfg.data.sources]
    hub_datasets = [s for s in specs if "/" in s and not cfg.resolve_path(s).exists()]
    tuned = (metrics or {}).get("tuned", {})
    results = [
        EvalResult(task_type="text-generation", task_name="question decomposition",
                   dataset_type="held-out", dataset_name="held-out split", metric_type=key,
                   metric_value=round(tuned[key], 4))
        for key in CARD_METRICS if tuned.get(key) is not None
    ]  # fmt: skip
    return ModelCardData(
        base_model=None if cfg.model.name == "tiny" else cfg.model.name,
        library_name="transformers",
        tags=["question-decomposition", "lora", "peft", "qdlib"],
        language=cfg.data.languages or ["ko", "en"],
        datasets=hub_datasets or None,
        model_name=f"{cfg.profile}-decompose",
        eval_results=results or None,
    )


def model_card(cfg: Config, run_dir: Path, tokenizer: Any) -> str:
    """``export/README.md`` from ``qdlib/templates/model_card.md``: what the model is, how it was
    made and scored, and how to use it, under the hub's metadata block (``ModelCardData``).

    The metadata names the hub id as the base model, as ``adapter_config.json`` does; the text
    says which weights the adapter was actually trained on (:func:`trained_weights`: for the
    packaged GGUF, the file and its sha256) and what that means for its users.
    """
    run_dir = Path(run_dir)
    report = _read_json_if(run_dir / "data/report.json") or {}
    metrics = _read_json_if(run_dir / "eval/metrics.json")
    specs = [cfg.data.train_file] if cfg.data.train_file else [s.spec for s in cfg.data.sources]
    tiny = cfg.model.name == "tiny"
    # the card's example in the language the model was trained on (Korean when it was)
    lang = cfg.data.language if cfg.data.language != "auto" else (
        "ko" if "ko" in (cfg.data.languages or ["ko"]) else "en")  # fmt: skip
    card = ModelCard.from_template(
        _card_data(cfg, metrics),
        template_path=str(CARD_TEMPLATE),
        title=f"{'qdlib tiny model (random weights)' if tiny else cfg.model.name}, "
        "fine-tuned to decompose questions",
        profile=cfg.profile, seed=cfg.seed, base_model=cfg.model.name, dtype=cfg.model.dtype,
        quantization=cfg.model.quantization, weights=trained_weights(cfg, run_dir),
        lora=cfg.lora, training=cfg.training,
        max_seq_length=cfg.data.max_seq_length,
        data_sources=", ".join(f"`{s}`" for s in specs),
        n_train=report.get("train", "?"), n_eval=report.get("eval", "?"),
        duplicates=report.get("duplicates_dropped", 0),
        invalid=sum(s.get("kind", "invalid") == "invalid" for s in report.get("skipped", [])),
        metrics_table=compare_table(model_metrics(metrics)) if metrics else
        "Not evaluated (run notebook 05 or `qd eval`).",
        parity=_read_json_if(run_dir / "export/parity.json"),
        example_prompt=render_prompt(CARD_EXAMPLE[lang], tokenizer, lang),
        instruction=repr(INSTRUCTIONS[lang]),
        more_limits=["This is the course's tiny random-weight model: it learned the structure "
                     "of decompositions, not language or facts. It is for learning, not for use."]
        if tiny else [],
    )  # fmt: skip
    return str(card)


def _read_json_if(path: Path) -> Any:
    """The JSON in ``path``, or None when an earlier lesson has not written it."""
    return read_json(path) if path.exists() else None


GGUF_HELP = (
    "GGUF export needs llama.cpp's converter. Clone llama.cpp "
    "(git clone https://github.com/ggml-org/llama.cpp), install its Python requirements "
    "(pip install -r llama.cpp/requirements/requirements-convert_hf_to_gguf.txt), then set "
    "export.llama_cpp_dir to that folder (or LLAMA_CPP_DIR in the environment)."
)


def convert_to_gguf(
    merged_dir: Path, out_file: Path, llama_cpp_dir: str | None, outtype: str = "f16"
) -> Path:
    """Convert a merged model to GGUF with llama.cpp's ``convert_hf_to_gguf.py`` (not bundled)."""
    folder = llama_cpp_dir or os.environ.get("LLAMA_CPP_DIR")
    script = Path(folder).expanduser() / "convert_hf_to_gguf.py" if folder else None
    if script is None or not script.exists():
        where = f" ({script} not found)" if script else ""
        raise FileNotFoundError(GGUF_HELP + where)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    cmd = [
        sys.executable,
        str(script),
        str(merged_dir),
        "--outfile",
        str(tmp),
        "--outtype",
        outtype,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp conversion failed:\n{done.stderr[-2000:]}")
    os.replace(tmp, out_file)
    return out_file


# ---------------------------------------------------------------- using an export


