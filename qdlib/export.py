"""Lesson 06: export the adapter, merge it into the base model, and check the merge changes nothing.

A merge folds ``(alpha / r) * B A`` into each adapted weight, giving an ordinary model that loads
with plain ``transformers``. It is done on an unquantized (16/32-bit) copy of the base: merging
into 4-bit weights rounds the update away and loses quality.
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

from qdlib.config import Config
from qdlib.model import load_with_adapter
from qdlib.notices import quiet_hf
from qdlib.remote_code import pretrained
from qdlib.runs import atomic_dir


class MergeRefused(RuntimeError):
    """Merging into quantized weights: refused, with the way to do it instead."""


def export_adapter(adapter_dir: Path, out_dir: Path) -> Path:
    """Copy the trained adapter (safetensors, ``adapter_config.json``, tokenizer) to ``out_dir``."""
    return atomic_dir(out_dir, lambda tmp: shutil.copytree(adapter_dir, tmp, dirs_exist_ok=True))


def refuse_quantized(model: Any) -> None:
    """Raise :class:`MergeRefused` when ``model`` holds 4-bit or 8-bit weights."""
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        raise MergeRefused(
            "refusing to merge into a quantized (4/8-bit) model: the merged weights would be "
            "rounded and lose what training learned. Reload the base unquantized "
            "(merge_adapter does: load_model(cfg, quantized=False)), apply the adapter, "
            "merge, and quantize the merged model afterwards if you need to."
        )


def merge_adapter(cfg: Config, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge the adapter into an unquantized copy of the base and save it, with the tokenizer."""
    from transformers import AutoTokenizer

    model = load_with_adapter(cfg, adapter_dir, quantized=False)
    refuse_quantized(model.get_base_model())
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
        return self.identical / self.total if self.total else 1.0

    def __str__(self) -> str:
        return f"{self.identical}/{self.total} identical greedy outputs ({100 * self.rate:.1f}%)"


def parity(questions: list[str], reference: list[Any], candidate: list[Any]) -> Parity:
    """Compare two lists of :class:`qdlib.evaluate.Generation` by token ids."""
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
    from qdlib.data import prompt_ids
    from qdlib.evaluate import decode_answer

    prompts = [prompt_ids(q, tokenizer, language) for q in questions]
    ids = plain_transformers_ids(model_dir, prompts, max_new_tokens, batch_size, trust_remote_code)
    candidate = [decode_answer(row, tokenizer) for row in ids]
    return parity(questions, reference, candidate)


# ---------------------------------------------------------------- model card, hub, GGUF


def _metrics_table(metrics: dict[str, Any]) -> str:
    from qdlib.evaluate import compare_table

    return compare_table(metrics)


def model_card(cfg: Config, run_dir: Path, tokenizer: Any) -> str:
    """``export/README.md``: what the model is, how it was made and scored, and how to use it."""
    from qdlib.data import INSTRUCTIONS, render_prompt

    run_dir = Path(run_dir)
    report = _read_json(run_dir / "data/report.json") or {}
    metrics = _read_json(run_dir / "eval/metrics.json")
    par = _read_json(run_dir / "export/parity.json")
    t, lo = cfg.training, cfg.lora
    base = cfg.model.name if cfg.model.name != "tiny" else "qdlib tiny model (random weights)"
    example = render_prompt("서울과 부산 중 인구가 더 많은 도시는?", tokenizer)
    lines = [
        "---",
        "library_name: transformers",
        f"base_model: {cfg.model.name}" if cfg.model.name != "tiny" else "base_model: null",
        "language: [ko, en]",
        "tags: [question-decomposition, lora, qdlib]",
        "---",
        "",
        f"# {base}, fine-tuned to decompose questions",
        "",
        "Given a complex question, the model writes the simple sub-questions that answer it, one",
        "per line, numbered, then stops. Made with the qdlib course "
        f"(profile `{cfg.profile}`, seed {cfg.seed}).",
        "",
        "## Training",
        "",
        f"- Base model: `{cfg.model.name}`, loaded in {cfg.model.dtype}, quantization "
        f"{cfg.model.quantization}.",
        f"- Data: `{cfg.data.train_file}`: {report.get('train', '?')} training and "
        f"{report.get('eval', '?')} held-out records ({report.get('duplicates_dropped', 0)} "
        f"duplicates and {len(report.get('skipped', []))} invalid records dropped).",
        f"- LoRA: r={lo.r}, alpha={lo.alpha}, dropout={lo.dropout}, targets {lo.target_modules}.",
        f"- Training: {t.epochs} epochs (max_steps {t.max_steps}), batch {t.batch_size} x "
        f"{t.gradient_accumulation_steps}, lr {t.learning_rate} ({t.lr_scheduler}), "
        f"optimizer {t.optimizer}, max_seq_length {cfg.data.max_seq_length}.",
        "- Loss on the answer and its end-of-sequence token only (the prompt is masked).",
        "",
        "## Evaluation",
        "",
        _metrics_table(metrics) if metrics else "Not evaluated (run notebook 05 or `qd eval`).",
        "",
    ]
    if par:
        lines += [
            f"Merged export vs base + adapter: {par['identical']}/{par['total']} "
            "identical greedy outputs.",
            "",
        ]
    lines += [
        "## Prompt format",
        "",
        "The model answers the prompt it was trained with: this instruction as the system turn "
        "(Korean questions get the Korean one) and the question as the user turn, inside the "
        "chat template:",
        "",
        "```text",
        example,
        "```",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'tok = AutoTokenizer.from_pretrained("export/merged")',
        'model = AutoModelForCausalLM.from_pretrained("export/merged")',
        f"instruction = {INSTRUCTIONS['en']!r}",
        'question = "Which city has more people, Seoul or Busan?"',
        'messages = [{"role": "system", "content": instruction},',
        '            {"role": "user", "content": question}]',
        'ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")',
        "out = model.generate(ids, max_new_tokens=128, do_sample=False)",
        "print(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))",
        "```",
        "",
        "With the adapter on top of the base model instead (`peft`):",
        "",
        "```python",
        "from peft import AutoPeftModelForCausalLM",
        'model = AutoPeftModelForCausalLM.from_pretrained("export/adapter")',
        "```",
        "",
        'Or from the command line: `qd decompose --model export/merged "your question"`.',
        "",
        "## Limitations",
        "",
        "- It decomposes; it does not answer. Sub-questions can be wrong or miss a step: check "
        "them before acting on them.",
        "- It learned the kinds of questions in its training data; others decompose worse.",
    ]
    if cfg.model.name == "tiny":
        lines.append(
            "- This is the course's tiny random-weight model: it learned the structure of "
            "decompositions, not language or facts. It is for learning, not for use."
        )
    return "\n".join(lines) + "\n"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def hub_token() -> str | None:
    """The Hugging Face token from the environment, or from a ``.env`` file in the project."""
    from qdlib.config import PROJECT_ROOT

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    env_file = PROJECT_ROOT / ".env"
    if not token and env_file.exists():
        for line in env_file.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") and value.strip():
                token = value.strip().strip("'\"")
    return token or None


def push_to_hub(folder: Path, repo_id: str) -> str:
    """Upload ``folder`` to the hub; return what happened. Never prints or returns the token."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return f"push to {repo_id} skipped: offline (HF_HUB_OFFLINE is set)."
    token = hub_token()
    if token is None:
        return (
            f"push to {repo_id} skipped: no token. Set HF_TOKEN in the environment or in "
            ".env (never in a profile or a notebook)."
        )
    from huggingface_hub import HfApi

    try:
        api = HfApi(token=token)
        api.create_repo(repo_id, exist_ok=True, private=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id)
    except Exception as exc:  # network, permissions: report without the token
        message = str(exc).replace(token, "***")
        return f"push to {repo_id} failed: {type(exc).__name__}: {message}"
    return f"pushed {folder.name} to https://huggingface.co/{repo_id} (private)."


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


def load_exported(model_dir: Path, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """Model and tokenizer from an export: a merged folder, or an adapter folder (base + adapter).

    An adapter folder names its base model in ``adapter_config.json``; it is loaded from there.
    Code shipped in either folder runs only with ``trust_remote_code`` (see :func:`pretrained`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qdlib.model import device, resolve_dtype

    model_dir = Path(model_dir)
    if (
        not (model_dir / "config.json").exists()
        and not (model_dir / "adapter_config.json").exists()
    ):
        raise FileNotFoundError(
            f"{model_dir}: neither a model (config.json) nor an adapter (adapter_config.json). "
            "Use a run's export/merged or export/adapter folder."
        )
    tokenizer = pretrained(AutoTokenizer, model_dir, trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = resolve_dtype("auto")
    with quiet_hf():
        if (model_dir / "adapter_config.json").exists():
            from peft import AutoPeftModelForCausalLM

            auto_class = AutoPeftModelForCausalLM
        else:
            auto_class = AutoModelForCausalLM
        model = pretrained(
            auto_class, model_dir, trust_remote_code, dtype=dtype, use_safetensors=True
        )
    return model.to(device()), tokenizer


def decompose(
    model: Any,
    tokenizer: Any,
    questions: list[str],
    batch_size: int = 16,
    max_new_tokens: int = 128,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Decompose questions: ``{"question", "sub_questions" (None if unparsable), "output"}``."""
    from qdlib.evaluate import generate, parse_sub_questions

    gens = generate(
        model,
        tokenizer,
        questions,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=progress,
    )
    return [
        {"question": q, "sub_questions": parse_sub_questions(g.text), "output": g.text}
        for q, g in zip(questions, gens, strict=True)
    ]


def read_questions(path: Path) -> list[str]:
    """Questions from a ``.txt`` (one per line) or ``.json``/``.jsonl`` (records or strings)."""
    from qdlib.data import DataError

    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".txt":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    elif path.suffix == ".json":
        items = json.loads(text)
    else:
        raise DataError(f"{path}: use .txt (one question per line), .json or .jsonl.")
    questions = []
    for i, item in enumerate(items, start=1):
        q = item.get("question") if isinstance(item, dict) else item
        if not isinstance(q, str) or not q.strip():
            where = f"line {i}" if path.suffix == ".jsonl" else f"index {i - 1}"
            raise DataError(f'{path}, {where}: expected a question string or {{"question": ...}}.')
        questions.append(q.strip())
    return questions
