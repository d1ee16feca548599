"""Using a model: decompose questions with it (lesson 05's scoring, lesson 06's export, ``qd
decompose`` and the try-it box all answer through here).

Generation is batched with left padding (so every prompt ends where generation starts), greedy,
and stops at the EOS; :func:`load_exported` loads what lesson 06 exported, a merged model or an
adapter on its base.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from qdlib.data import DataError, items_of, read_utf8
from qdlib.files import BadLine, read_json, safetensors_problem
from qdlib.metrics import parse_sub_questions
from qdlib.model import attach_adapter, check_adapter, device, resolve_dtype
from qdlib.notices import quiet_hf
from qdlib.prompts import answer_end, prompt_ids
from qdlib.remote_code import pretrained
from qdlib.runs import RunDirError
from qdlib.weights import weights_for


class WithoutAdapter:
    """A model with LoRA adapters, answering as its base model: ``PeftModel.disable_adapter()``
    around each call, so the untuned answers come from the one copy of the weights in memory."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with self.model.disable_adapter():
            return self.model.generate(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.model.disable_adapter():
            return self.model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # parameters(), eval(), config: the model's own
        return getattr(self.model, name)


@dataclass
class Generation:
    """One decoded answer: its text, whether it stopped by itself (EOS), and its token ids."""

    text: str
    stopped: bool
    ids: list[int]


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    questions: list[str],
    batch_size: int = 16,
    max_new_tokens: int = 96,
    language: str = "auto",
    progress: bool = True,
    prompt: Callable[[str, Any, str], list[int]] = prompt_ids,
) -> list[Generation]:
    """Greedy decompositions for ``questions``, in batches of similar prompt length.

    ``prompt(question, tokenizer, language)`` gives each prompt's token ids: the course's prompt
    by default, a few-shot one for that baseline (:func:`qdlib.baselines.few_shot_prompt`).
    """
    end = answer_end(tokenizer)  # a base model's answer also ends at a blank line
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        stop_strings=[end] if end else None,
        use_cache=True,  # training turns the model's own use_cache off (see qdlib.train)
    )
    model.eval()
    on = next(model.parameters()).device
    prompts = [prompt(q, tokenizer, language) for q in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: dict[int, Generation] = {}
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="generating", disable=not progress):
        width = max(len(prompts[i]) for i in batch)
        ids = [[tokenizer.pad_token_id] * (width - len(prompts[i])) + prompts[i] for i in batch]
        mask = [[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch]
        out = model.generate(
            input_ids=torch.tensor(ids, device=on),
            attention_mask=torch.tensor(mask, device=on),
            generation_config=gen_cfg,
            tokenizer=tokenizer,  # what stop_strings are matched with
        )
        for row, i in zip(out[:, width:].tolist(), batch, strict=True):
            results[i] = decode_answer(row, tokenizer, end)
    return [results[i] for i in range(len(questions))]


def decode_answer(new_ids: list[int], tokenizer: Any, end: str | None = None) -> Generation:
    """The answer's text and ids: up to the EOS (or the text ``end``, when given and written:
    :func:`qdlib.prompts.answer_end`), or, when ``max_new_tokens`` cut it off, up to the last
    whole character (a Hangul syllable can take several byte-level tokens, and a cut between them
    would decode as U+FFFD). Stopping at ``end`` counts as stopping by itself; the ids then run
    to the token that completed ``end`` (whatever was generated after it in the same batch is
    dropped, so two runs that agree up to there compare equal)."""
    eos = tokenizer.eos_token_id
    stopped = eos in new_ids
    kept = new_ids[: new_ids.index(eos)] if stopped else new_ids
    while not stopped and kept and kept[-1] == tokenizer.pad_token_id:
        kept = kept[:-1]  # padding after a cut is not part of the answer
    text = tokenizer.decode(kept, skip_special_tokens=True)
    if not stopped:
        for _ in range(3):  # a character is at most 4 bytes: at most 3 tokens to take back
            if not (kept and text.endswith("\ufffd")):
                break
            kept = kept[:-1]
            text = tokenizer.decode(kept, skip_special_tokens=True)
    if end and not stopped and end in text:
        upto = next(k for k in range(1, len(kept) + 1)
                    if end in tokenizer.decode(kept[:k], skip_special_tokens=True))  # fmt: skip
        kept, text, stopped = kept[:upto], text[: text.index(end)], True
    return Generation(text, stopped, kept)


def generation_settings(cfg: Any) -> dict[str, Any]:
    """How a profile decodes: batch size, ``max_new_tokens`` and the instruction language.

    One place, so evaluation, export parity and the try-it box prompt exactly as training did.
    """
    return {
        "batch_size": cfg.evaluation.batch_size,
        "max_new_tokens": cfg.evaluation.max_new_tokens,
        "language": cfg.data.language,
    }


def try_it(
    models: dict[str, Any],
    tokenizer: Any,
    question: str = "서울과 부산 중 인구가 더 많은 도시는?",
    **settings: Any,
) -> Any:
    """An ipywidgets box: type a question (Korean or English), see each model's decomposition."""
    text = w.Textarea(
        value=question,
        placeholder="질문을 입력하세요 / Type a question",
        layout=w.Layout(width="100%"),
    )
    button = w.Button(description="Decompose", button_style="primary")
    width = f"{100 // len(models) - 1}%"
    outputs = {n: w.Output(layout=w.Layout(width=width, border="1px solid #ccc")) for n in models}

    def decompose(_: Any = None) -> None:
        for name, model in models.items():
            gen = generate(model, tokenizer, [text.value], progress=False, **settings)[0]
            steps = parse_sub_questions(gen.text)
            shown = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)) if steps else gen.text
            outputs[name].outputs = ()
            outputs[name].append_stdout(f"{name}\n{'-' * len(name)}\n{shown}\n")

    button.on_click(decompose)
    return w.VBox([text, button, w.HBox(list(outputs.values()))])


# ---------------------------------------------------------------- using an export


# Far beyond any model a course would export: a config.json past these is damaged or hostile.
CONFIG_LIMITS = {"hidden_size": 2**16, "intermediate_size": 2**18, "num_hidden_layers": 1024,
                 "num_attention_heads": 1024, "vocab_size": 2**22}  # fmt: skip
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def check_export(model_dir: Path) -> None:
    """Refuse an export folder before anything loads, with one message naming the file: its
    tokenizer files present; a merged model's ``config.json`` within :data:`CONFIG_LIMITS`; every
    safetensors file whole (its header bounded and covering the file)."""
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise RunDirError(f"{model_dir}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
                          "export it again (lesson 06), or copy the base model's.")  # fmt: skip
    if (model_dir / "config.json").exists():
        try:
            config = read_json(model_dir / "config.json")
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{model_dir / 'config.json'}: unreadable ({exc}).") from None
        config = config if isinstance(config, dict) else {"config": config}
        for key, limit in CONFIG_LIMITS.items():
            v = config.get(key)
            if v is not None and not (isinstance(v, int) and 0 < v <= limit):
                raise RunDirError(f"{model_dir / 'config.json'}: {key}={v!r:.40} is not a "
                                  f"model size (1 to {limit:,}).")  # fmt: skip
    for weights in sorted(model_dir.glob("*.safetensors")):
        if problem := safetensors_problem(weights):
            raise RunDirError(f"{model_dir}: {problem}; export it again (lesson 06).")


def load_exported(model_dir: Path, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """Model and tokenizer from an export: a merged folder, or an adapter folder (base + adapter).

    An adapter folder names its base model in ``adapter_config.json``: a hub id (found as a
    profile's ``model.name`` is, so SmolLM2 loads offline from its package) or a local folder.
    Code shipped in either folder runs only with ``trust_remote_code`` (see :func:`pretrained`).
    """
    model_dir = Path(model_dir)
    if (
        not (model_dir / "config.json").exists()
        and not (model_dir / "adapter_config.json").exists()
    ):
        raise FileNotFoundError(
            f"{model_dir}: neither a model (config.json) nor an adapter (adapter_config.json). "
            "Use a run's export/merged or export/adapter folder."
        )
    check_export(model_dir)
    tokenizer = pretrained(AutoTokenizer, model_dir, trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = resolve_dtype("auto")
    adapter = model_dir / "adapter_config.json"
    if not adapter.exists():
        with quiet_hf():
            model = pretrained(AutoModelForCausalLM, model_dir, trust_remote_code, dtype=dtype,
                               use_safetensors=True)  # fmt: skip
        return model.to(device()), tokenizer
    check_adapter(model_dir)  # whole, before the base is loaded
    named = read_json(adapter)
    base_name = named.get("base_model_name_or_path")
    if not isinstance(base_name, str) or not base_name.strip():
        raise RunDirError(f"{adapter}: base_model_name_or_path names no base model; write the "
                          "hub id or folder of the model it was trained on there.")  # fmt: skip
    # A hub id is found the way a profile's model.name is: hub cache, hub, or a packaged GGUF.
    source = weights_for(base_name, named.get("revision"))
    with quiet_hf():
        base = pretrained(AutoModelForCausalLM, source.path, trust_remote_code, dtype=dtype,
                          use_safetensors=True)  # fmt: skip
    model = attach_adapter(base, model_dir, base_name)
    return model.to(device()), tokenizer


def decompose(
    model: Any, tokenizer: Any, questions: list[str], progress: bool = False, **settings: Any
) -> list[dict[str, Any]]:
    """Decompose questions: ``{"question", "sub_questions" (None if unparsable), "output"}``.

    ``settings`` are :func:`qdlib.evaluate.generate`'s (``generation_settings(cfg)``: batch
    size, ``max_new_tokens`` and the instruction language), so it decodes as evaluation did.
    """
    gens = generate(model, tokenizer, questions, progress=progress, **settings)
    return [
        {"question": q, "sub_questions": parse_sub_questions(g.text), "output": g.text}
        for q, g in zip(questions, gens, strict=True)
    ]


def read_questions(path: Path) -> list[str]:
    """Questions from a ``.txt`` (one per line) or a ``.json`` list / ``.jsonl`` file of records
    or strings. Anything else is an error naming the file and the line or index."""
    path = Path(path)
    if path.suffix not in (".txt", ".json", ".jsonl"):
        raise DataError(f"{path}: use .txt (one question per line), .json or .jsonl.")
    text = read_utf8(path)
    if path.suffix == ".txt":
        return [line.strip() for line in text.split("\n") if line.strip()]
    items = items_of(path, text, jsonl=path.suffix == ".jsonl")
    questions = []
    for where, item in items:
        q = item.get("question") if isinstance(item, dict) else item
        if isinstance(item, BadLine):
            raise DataError(f"{path}, {where}: {item.reason}")
        if not isinstance(q, str) or not q.strip():
            raise DataError(f'{path}, {where}: expected a question string or {{"question": ...}}.')
        questions.append(q.strip())
    return questions
