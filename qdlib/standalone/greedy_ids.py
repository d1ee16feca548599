"""Greedy decoding with plain transformers: no qdlib import. Used to check an export's parity.

    python -P greedy_ids.py request.json response.json

``request.json``: ``{"model_dir", "prompts": [[token ids]...], "max_new_tokens", "batch_size",
"trust_remote_code"}`` (always a bool here, so transformers never asks on stdin).
``response.json``: ``{"ids": [[new token ids as generated, EOS and padding included]...]}``: the
caller cuts them into answers exactly as it cuts its own. Run with ``-P`` so the
folder of this file is not put on ``sys.path``.
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(request_path: str, response_path: str) -> None:
    with open(request_path, encoding="utf-8") as fh:
        req = json.load(fh)
    trust = bool(req.get("trust_remote_code", False))
    tok = AutoTokenizer.from_pretrained(req["model_dir"], trust_remote_code=trust)
    model = AutoModelForCausalLM.from_pretrained(req["model_dir"], trust_remote_code=trust).eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out_ids = []
    prompts, size = req["prompts"], req["batch_size"]
    for start in range(0, len(prompts), size):
        batch = prompts[start : start + size]
        width = max(len(p) for p in batch)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=req["max_new_tokens"],
                do_sample=False,
                eos_token_id=tok.eos_token_id,
                pad_token_id=pad,
            )
        out_ids.extend(out[:, width:].tolist())
    with open(response_path, "w", encoding="utf-8") as fh:
        json.dump({"ids": out_ids, "qdlib_imported": "qdlib" in sys.modules}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
