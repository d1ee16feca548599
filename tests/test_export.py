"""Export: never merge into quantized weights; an interrupted export leaves no half folder."""

from __future__ import annotations

import json

import pytest

from qdlib.export import export_adapter


def test_a_4bit_profile_merges_into_full_precision_weights(tmp_path, tiny_cfg, tiny_tokenizer):
    """QLoRA trains on 4-bit weights; the merge must still add B A into unquantized ones, or
    the update is rounded away. merge_adapter, given a 4-bit profile, merges in float32."""
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file

    from qdlib.config import load_config
    from qdlib.export import merge_adapter
    from qdlib.model import load_model
    from qdlib.notices import quiet_hf
    from qdlib.train import save_adapter

    base = load_model(tiny_cfg)
    w = base.model.layers[0].self_attn.q_proj.weight.detach().clone()
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], init_lora_weights=False)
    with quiet_hf():
        tuned = get_peft_model(base, lora)
    layer = tuned.base_model.model.model.layers[0].self_attn.q_proj
    update = 2.0 * (layer.lora_B["default"].weight @ layer.lora_A["default"].weight).detach()
    save_adapter(tuned, tiny_tokenizer, tmp_path / "run/adapter")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the tiny model is quantized to 4bit"
        four_bit = load_config("cpu_tiny", model={"quantization": "4bit"})
    merged = merge_adapter(four_bit, tmp_path / "run/adapter", tmp_path / "run/export/merged")
    assert "quantization_config" not in json.loads((merged / "config.json").read_text())
    saved = load_file(merged / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    assert saved.dtype == torch.float32 and saved.shape == w.shape
    assert torch.allclose(saved, w + update, atol=1e-6)


def test_interrupted_export_leaves_no_half_folder(tmp_path, monkeypatch):
    src = tmp_path / "adapter"
    src.mkdir()
    (src / "adapter_config.json").write_text("{}", encoding="utf-8")

    def boom(*args, **kwargs):
        raise OSError("interrupted")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="interrupted"):
        export_adapter(src, tmp_path / "export/adapter")
    assert not (tmp_path / "export/adapter").exists()
    assert list((tmp_path / "export").iterdir()) == []


# ---------------------------------------------------------------- with a trained adapter

slow = pytest.mark.slow


@pytest.fixture(scope="session")
def exported(trained):
    """Adapter exported and merged into export/ of the trained run."""
    from qdlib.export import export_adapter, merge_adapter

    cfg, tok, _, run_dir = trained
    adapter = export_adapter(run_dir / "adapter", run_dir / "export/adapter")
    merged = merge_adapter(cfg, run_dir / "adapter", run_dir / "export/merged")
    return cfg, tok, run_dir, adapter, merged


@slow
def test_export_folders_are_safetensors_with_chat_template(exported):
    _, tok, _, adapter, merged = exported
    for folder in (adapter, merged):
        assert list(folder.glob("*.safetensors")) and not list(folder.glob("*.bin"))
        from transformers import AutoTokenizer

        assert AutoTokenizer.from_pretrained(folder).chat_template == tok.chat_template


@slow
def test_merged_export_reloaded_without_qdlib_matches_base_plus_adapter(exported):
    from qdlib.data import load_records
    from qdlib.export import parity_with_plain_transformers
    from qdlib.inference import generate
    from qdlib.model import load_with_adapter

    cfg, tok, run_dir, _, merged = exported
    questions = [r["question"] for r in load_records(run_dir / "data/eval.jsonl").records[:24]]
    settings = {"batch_size": 8, "max_new_tokens": 24}
    reference = generate(
        load_with_adapter(cfg, run_dir / "adapter"), tok, questions, progress=False, **settings
    )
    check = parity_with_plain_transformers(merged, tok, questions, reference, **settings)
    assert check.rate >= 0.99, check.mismatches


@slow
def test_adapter_export_loads_with_plain_peft(exported):
    from peft import AutoPeftModelForCausalLM

    _, _, _, adapter, _ = exported
    model = AutoPeftModelForCausalLM.from_pretrained(adapter)
    assert type(model.get_base_model()).__name__ == "LlamaForCausalLM"


@slow
def test_qd_decompose_text_and_json_on_a_file(exported, tmp_path, capsys):
    from qdlib.cli import main

    _, _, _, adapter, merged = exported
    questions = tmp_path / "questions.txt"
    questions.write_text("서울과 부산 중 인구가 더 많은 도시는?\nWho wrote Hamlet?\n", "utf-8")
    assert (
        main(
            [
                "decompose",
                "--model",
                str(merged),
                "--file",
                str(questions),
                "--max-new-tokens",
                "24",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert text.count("Q: ") == 2 and "Q: 서울과 부산" in text
    assert (
        main(
            [
                "decompose",
                "--model",
                str(adapter),
                "--format",
                "json",
                "--max-new-tokens",
                "24",
                "Who wrote Hamlet?",
            ]
        )
        == 0
    )
    (result,) = json.loads(capsys.readouterr().out)
    assert result["question"] == "Who wrote Hamlet?" and "sub_questions" in result


def test_qd_decompose_names_a_bad_folder(tmp_path, capsys):
    from qdlib.cli import main

    assert main(["decompose", "--model", str(tmp_path), "A?"]) == 2
    assert "neither a model (config.json) nor an adapter" in capsys.readouterr().err


def test_question_file_errors_name_the_line(tmp_path):
    from qdlib.data import DataError
    from qdlib.inference import read_questions

    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "A?"}\n{"q": "B?"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"q.jsonl, line 2: expected a question"):
        read_questions(path)


def test_model_card_describes_the_run(tmp_path, tiny_cfg, tiny_tokenizer):
    from qdlib.evaluate import write_report
    from qdlib.export import model_card
    from qdlib.files import atomic_write_json
    from qdlib.inference import Generation
    from qdlib.metrics import score

    card = model_card(tiny_cfg, tmp_path, tiny_tokenizer)
    assert "Not evaluated" in card and f"r={tiny_cfg.lora.r}" in card
    assert "<|im_start|>user" in card  # the prompt format, rendered with the chat template
    assert "## Limitations" in card and "random-weight" in card

    atomic_write_json(tmp_path / "data/report.json", {"train": 90, "eval": 10, "skipped": []})
    recs = [{"question": "Q?", "sub_questions": ["A?"]}]
    write_report(tmp_path / "eval", {"tuned": score(recs, [Generation("1. A?", True, [1])])})
    atomic_write_json(tmp_path / "export/parity.json", {"identical": 10, "total": 10})
    card = model_card(tiny_cfg, tmp_path, tiny_tokenizer)
    assert "90 training and 10 held-out records" in card and "| sari | 1.000 |" in card
    assert "10/10 identical greedy outputs" in card


def test_the_cards_example_prompt_is_in_the_language_the_model_was_trained_on(
    tmp_path, tiny_tokenizer
):
    from qdlib.config import load_config
    from qdlib.export import CARD_EXAMPLE, model_card
    from qdlib.prompts import INSTRUCTIONS

    english = model_card(load_config("cpu_tiny", data={"languages": ["en"]}), tmp_path,
                         tiny_tokenizer)  # fmt: skip
    assert CARD_EXAMPLE["en"] in english and CARD_EXAMPLE["ko"] not in english
    assert repr(INSTRUCTIONS["en"]) in english
    both = model_card(load_config("cpu_tiny", data={"languages": None}), tmp_path, tiny_tokenizer)
    assert CARD_EXAMPLE["ko"] in both and repr(INSTRUCTIONS["ko"]) in both


# ---------------------------------------------------------------- secrets and optional tools


def test_gguf_without_converter_says_what_to_install(tmp_path, monkeypatch):
    from qdlib.export import convert_to_gguf

    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    with pytest.raises(
        FileNotFoundError, match=r"git clone https://github\.com/ggml-org/llama\.cpp"
    ):
        convert_to_gguf(tmp_path, tmp_path / "m.gguf", None)


def test_gguf_runs_the_configured_converter(tmp_path):
    from qdlib.export import convert_to_gguf

    llama = tmp_path / "llama.cpp"
    llama.mkdir()
    (llama / "convert_hf_to_gguf.py").write_text(
        "import sys\nargs = sys.argv[1:]\nout = args[args.index('--outfile') + 1]\n"
        "open(out, 'w').write(' '.join(args))\n",
        encoding="utf-8",
    )
    out = convert_to_gguf(tmp_path / "merged", tmp_path / "m.gguf", str(llama), "q8_0")
    written = out.read_text(encoding="utf-8")
    assert written.startswith(str(tmp_path / "merged")) and "--outtype q8_0" in written


def test_parity_of_no_questions_is_an_error_not_100_percent():
    from qdlib.export import parity
    from qdlib.inference import Generation

    with pytest.raises(ValueError, match="no questions to compare"):
        parity([], [], [])
    same, other = Generation("1. A?", True, [1, 2]), Generation("1. B?", True, [1, 3])
    assert parity(["q", "r"], [same, same], [same, other]).rate == 0.5
