"""The course as a learner reads it: plain Hugging Face calls, tiered exercises, Korean throughout.

The notebooks are bilingual: every markdown cell is English followed by its Korean counterpart in
blockquotes opened by ``> **[한국어]**``. One source (``notebooks/src``), one set of code cells
and outputs; these tests fail when the two languages drift apart.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from qdlib.config import PROJECT_ROOT
from qdlib.runs import LESSONS

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import build_notebooks

SOURCES = PROJECT_ROOT / "notebooks" / "src"
KOREAN_MARK = "> **[한국어]**"
HANGUL = re.compile(r"[\uac00-\ud7a3]")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# Korean prose runs at 1.5 to 3 syllables per English word (measured on these notebooks); a Korean
# part with fewer than one syllable per word is a summary of the English, not a translation.
MIN_SYLLABLES_PER_WORD = 1.0

# The call each lesson makes by hand, as it is called: a name, or its dotted tail
# ("generate" matches tuned_model.generate(...)).
PLAIN_CALLS = {
    "01_data_format": ["apply_chat_template"],
    "02_model_load": ["AutoModelForCausalLM.from_pretrained", "BitsAndBytesConfig"],
    "03_lora_config": ["LoraConfig", "get_peft_model"],
    "04_train": ["DataCollatorForSeq2Seq", "TrainingArguments", "Trainer"],
    "05_evaluate": ["generate", "GenerationConfig"],
    "06_export": ["PeftModel.from_pretrained", "merge_and_unload"],
}
TIERS = ("🐢", "🐕", "🦁")


def notebook(lesson: str) -> nbformat.NotebookNode:
    return build_notebooks.build(SOURCES / f"{lesson}.py")


def sections(markdown: str) -> list[str]:
    """A markdown cell cut at its ``##`` headings: each part must be bilingual on its own."""
    return [s for s in re.split(r"\n(?=## )", markdown) if s.strip()]


def languages(section: str) -> tuple[str, str]:
    """(English, Korean) text of a section: lines outside and inside ``>`` blockquotes."""
    english = "\n".join(line for line in section.splitlines() if not line.startswith(">"))
    korean = "\n".join(line for line in section.splitlines() if line.startswith(">"))
    return english, korean


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_english_explanation_has_its_korean_counterpart(lesson):
    problems = []
    for i, cell in enumerate(notebook(lesson).cells):
        if cell.cell_type != "markdown":
            continue
        for part in sections(cell.source):
            english, korean = languages(part)
            words = len(LATIN_WORD.findall(re.sub(r"`[^`]*`|\$[^$]*\$", "", english)))
            syllables = len(HANGUL.findall(korean))
            where = f"cell {i} ({part.splitlines()[0][:50]!r})"
            if KOREAN_MARK not in korean:
                problems.append(f"{where}: no {KOREAN_MARK} part")
            elif words and syllables < MIN_SYLLABLES_PER_WORD * words:
                problems.append(f"{where}: {syllables} Korean syllables for {words} English words")
            if HANGUL.search(english) and not words:
                problems.append(f"{where}: Korean outside the Korean part, and no English")
    assert problems == []


def test_the_drift_check_fails_on_a_cell_without_korean():
    english_only = "## Merge\nMerging adds the update into each weight, on an unquantized base."
    summary_only = english_only + "\n\n> **[한국어]** 병합."
    assert KOREAN_MARK not in languages(sections(english_only)[0])[1]
    _, korean = languages(sections(summary_only)[0])
    assert len(HANGUL.findall(korean)) < MIN_SYLLABLES_PER_WORD * 11


def called_names(code: str) -> set[str]:
    """What a cell's code calls, read from its syntax tree (so not from comments or strings).

    Each call gives its dotted name and every tail of it: ``tuned_model.generate(...)`` gives
    ``tuned_model.generate`` and ``generate``; ``f(x).merge_and_unload()`` gives
    ``merge_and_unload``. IPython syntax (``%time``, ``model??``) is turned into Python first;
    what it wraps is then text, not a call.
    """
    names = set()
    for node in ast.walk(ast.parse(TransformerManager().transform_cell(code))):
        if isinstance(node, ast.Call):
            parts, callee = [], node.func
            while isinstance(callee, ast.Attribute):
                parts.insert(0, callee.attr)
                callee = callee.value
            if isinstance(callee, ast.Name):
                parts.insert(0, callee.id)
            names.update(".".join(parts[i:]) for i in range(len(parts)))
    return names


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_plain_hugging_face_calls_are_in_code_the_learner_reads(lesson):
    cells = [c.source for c in notebook(lesson).cells if c.cell_type == "code"]
    called = set().union(*map(called_names, cells))
    assert [call for call in PLAIN_CALLS[lesson] if call not in called] == []


def test_a_call_in_a_comment_a_string_or_a_longer_name_does_not_count():
    code = (
        "# then get_peft_model(model, cfg)\n"
        'print("Trainer(args)")\n'
        "trainer = Seq2SeqTrainer(args)\n"
        "merged = PeftModel.from_pretrained(base, path).merge_and_unload()\n"
        "tuned_model.generate??\n"
    )
    called = called_names(code)
    assert not {"get_peft_model", "Trainer", "generate"} & called
    assert {"print", "Seq2SeqTrainer", "PeftModel.from_pretrained", "merge_and_unload"} <= called


@pytest.mark.parametrize("lesson", LESSONS)
def test_three_tiers_of_exercises_each_with_a_solution_to_reveal(lesson):
    cells = notebook(lesson).cells
    exercises = [i for i, c in enumerate(cells) if "exercise" in c.metadata.get("tags", [])]
    assert len(exercises) >= 3
    assert {t for i in exercises for t in TIERS if cells[i].source.startswith(t)} == set(TIERS)
    for i in exercises:
        solution = cells[i + 1]
        assert "solution" in solution.metadata.get("tags", []), f"exercise cell {i}"
        hidden = solution.metadata.get("jupyter", {})
        assert hidden.get("source_hidden") is True
        if solution.cell_type == "code":  # its output is part of the answer: hidden too
            assert hidden.get("outputs_hidden") is True, f"solution cell {i + 1}"
        assert KOREAN_MARK in cells[i].source


@pytest.mark.parametrize("lesson", LESSONS)
def test_code_solutions_are_executed_in_the_committed_notebook(lesson):
    """nbval runs them in `make test`; the committed notebook shows they ran without error."""
    nb = nbformat.read(PROJECT_ROOT / "notebooks" / f"{lesson}.ipynb", as_version=4)
    solutions = [
        c for c in nb.cells if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])
    ]
    assert solutions, "at least one solution is code"
    assert all(c.execution_count and c.outputs for c in solutions)


def readme_sections(name: str) -> list[str]:
    text = (PROJECT_ROOT / name).read_text(encoding="utf-8")
    return re.findall(r"^## (.+)$", text, re.M)


def test_the_korean_readme_covers_every_section_of_the_english_one():
    """Each ``##`` heading of README.ko.md names its English section in parentheses."""
    english = readme_sections("README.md")
    korean = readme_sections("README.ko.md")
    named = [m.group(1) for h in korean if (m := re.search(r"\(([^()]*)\)\s*$", h))]
    assert named == english
    assert all(HANGUL.search(h) for h in korean)


# ---------------------------------------------------------------- Korean in the code, one glossary

COMMENT_MARKERS = re.compile(r"^(NBVAL_\w+|fmt: \w+|noqa\b.*|type: ignore.*)$")


def english_only_comments(code: str) -> list[str]:
    """Comments in a code cell that a Korean reader cannot read: an English comment passes when
    the comment line just above it is Korean, and a block of whole-line comments passes when one
    of its lines is Korean (the translation follows the English)."""
    found: dict[int, tuple[int, str]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            found[tok.start[0]] = (tok.start[1], tok.string.lstrip("#").strip())
    lines = code.split("\n")
    whole = {n for n, (col, _) in found.items() if not lines[n - 1][:col].strip()}
    blocks: list[list[int]] = []
    for n in sorted(whole):
        if blocks and blocks[-1][-1] == n - 1:
            blocks[-1].append(n)
        else:
            blocks.append([n])
    korean_block = {n for b in blocks if any(HANGUL.search(found[m][1]) for m in b) for n in b}
    bad = []
    for n, (_, text) in sorted(found.items()):
        text = re.sub(r"\s*#\s*(fmt: skip|noqa\S*)$", "", text)
        if not LATIN_WORD.search(text) or HANGUL.search(text) or COMMENT_MARKERS.match(text):
            continue
        if n in korean_block or (n not in whole and n - 1 in korean_block):
            continue
        bad.append(lines[n - 1].strip())
    return bad


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_code_comment_is_readable_in_korean(lesson):
    cells = [c for c in build_notebooks.build(SOURCES / f"{lesson}.py").cells
             if c.cell_type == "code"]  # fmt: skip
    assert [line for c in cells for line in english_only_comments(c.source)] == []


def test_the_comment_check_fails_on_an_english_only_comment():
    assert english_only_comments("x = 1  # the rank") == ["x = 1  # the rank"]
    assert english_only_comments("# 랭크\nx = 1  # the rank") == []
    assert english_only_comments("# one\n# two\nx = 1") == ["# one", "# two"]
    assert english_only_comments("# one\n# two\n# 하나, 둘\nx = 1") == []
    assert english_only_comments("# 랭크\n\n# the rank\nx = 1") == ["# the rank"]
    assert english_only_comments("# NBVAL_CHECK_OUTPUT\nx = '# not a comment'") == []


GLOSSARY = PROJECT_ROOT / "docs" / "glossary.ko.md"


def glossary_avoided() -> dict[str, str]:
    """The words the glossary's last column rules out, each with the term to use instead."""
    avoided = {}
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and HANGUL.search(cells[0]) and HANGUL.search(cells[2]):
            avoided |= {word.strip(): cells[0] for word in cells[2].split(",")}
    return avoided


def test_the_lessons_and_the_korean_readme_use_the_glossarys_terms():
    avoided = glossary_avoided()
    assert {"파인튜닝", "기본 모델", "파라미터", "업데이트", "턴"} <= set(avoided)
    texts = {p.name: p.read_text(encoding="utf-8") for p in SOURCES.glob("*.py")}
    texts["README.ko.md"] = (PROJECT_ROOT / "README.ko.md").read_text(encoding="utf-8")
    found = [
        f"{name}: {word} (use {term})"
        for name, text in texts.items()
        for word, term in avoided.items()
        if re.search(rf"(?<![\uac00-\ud7a3]){re.escape(word)}", text)
    ]
    assert found == []


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_lesson_ends_with_a_questionnaire_and_its_answers_collapsed(lesson):
    """fastbook's habit: a few questions to answer in your own words, the answers hidden below."""
    *_, questions, answers = build_notebooks.build(SOURCES / f"{lesson}.py").cells
    assert "questionnaire" in questions.metadata.get("tags", [])
    assert "answers" in answers.metadata.get("tags", [])
    assert answers.metadata.get("jupyter", {}).get("source_hidden") is True
    for cell in (questions, answers):
        english, korean = languages(cell.source)
        numbered_en = re.findall(r"^(\d+)\. ", english, re.M)
        numbered_ko = re.findall(r"^> (\d+)\. ", korean, re.M)
        assert len(numbered_en) >= 4 and numbered_en == numbered_ko, lesson
    assert len(re.findall(r"^\d+\. ", languages(questions.source)[0], re.M)) == len(
        re.findall(r"^\d+\. ", languages(answers.source)[0], re.M)
    )


# ---------------------------------------------------------------- pictures in both languages


def every_picture(tokenizer) -> dict[str, object]:
    """Each figure the course draws, from small inputs."""
    from qdlib import evaluate, experiments, memory, pictures, prompts, scorecard, train

    record = {"question": "Who is older, A or B?", "sub_questions": ["How old is A?", "#1?"]}
    example = prompts.encode_example(record, tokenizer)
    rates = dict.fromkeys(evaluate.RATE_KEYS, 0.5)
    sari = {"sari": {"mean": 0.5, "ci": [0.4, 0.6], "n": 3}}
    estimate = memory.Estimate("m", 500, 10, 10, 20, 300, 100, 400, 100, card=8192)
    variant = {"variant": "r=4", "trainable_share": 0.01, "seconds_per_step": 1.0,
               "loss_last": 0.5, "exact_match": 0.5}  # fmt: skip
    return {
        "lora_update": pictures.lora_update(),
        "trained_tokens": pictures.trained_tokens(example, tokenizer),
        "batch_layouts": pictures.batch_layouts([3, 5, 2]),
        "loss_shapes": pictures.loss_shapes(),
        "plot_lengths": prompts.plot_lengths([record], tokenizer),
        "plot_loss": train.plot_loss([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]),
        "plot_metrics": evaluate.plot_metrics({"base": rates, "tuned": rates}),
        "plot_scorecard": scorecard.plot_scorecard({"real": {"n": 3, "systems": {"tuned": sari}}}),
        "memory_chart": estimate.chart(),
        "plot_rank_experiment": experiments.plot_rank_experiment([variant]),
    }


def labels(fig) -> list[str]:
    """A figure's titles and axis labels with words in them (legends name systems and parts,
    as the tables do)."""
    texts = [fig._suptitle.get_text()] if fig._suptitle else []
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return [t for t in texts if LATIN_WORD.search(t)]


def test_every_pictures_titles_and_axes_are_readable_in_korean(tiny_tokenizer, monkeypatch):
    import matplotlib.pyplot as plt

    from qdlib import figures

    if figures.hangul_font() is None:  # the texts are what is checked: any font draws them here
        monkeypatch.setattr(figures, "hangul_font", lambda: "DejaVu Sans")
        monkeypatch.setattr("warnings.warn", lambda *args, **kwargs: None)  # its missing glyphs
    with plt.rc_context():
        english_only = {name: [t for t in labels(fig) if not HANGUL.search(t)]
                        for name, fig in every_picture(tiny_tokenizer).items()}  # fmt: skip
    assert {k: v for k, v in english_only.items() if v} == {}


def test_without_a_hangul_font_the_pictures_are_in_english_alone(tiny_tokenizer, monkeypatch):
    import matplotlib.pyplot as plt

    from qdlib import figures

    monkeypatch.setattr(figures, "hangul_font", lambda: None)
    with plt.rc_context():
        texts = [t for fig in every_picture(tiny_tokenizer).values() for t in labels(fig)]
    assert texts and not any(HANGUL.search(t) for t in texts)
