"""What qdlib does with its libraries' notices: one place, for notebooks, CLI and tests alike.

Some libraries print notices a learner can do nothing about. They land in a notebook as a red
stderr cell, in every ``qd`` command's console, and they break nbval's output checks. Each one we
handle is listed in :data:`KNOWN_NOTICES` with the reason; everything else is left as it is, so a
real warning still reaches the learner.

A listed notice is not thrown away: it is demoted to ``DEBUG`` on its own logger, so
``logging.basicConfig(level=logging.DEBUG)`` shows it again.

``import qdlib`` installs the filters (see ``qdlib/__init__.py``), before any qdlib module imports
bitsandbytes, transformers or peft, because some notices are logged at import time.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownNotice:
    """A library log message that is demoted to DEBUG, and why."""

    logger: str
    starts_with: str
    why: str

    def matches(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG and str(record.msg).startswith(self.starts_with)


KNOWN_NOTICES = (
    KnownNotice(
        logger="bitsandbytes.backends.cpu.ops",
        starts_with="Failed to load CPU gemm_4bit_forward from kernels-community",
        why=(
            "bitsandbytes >= 0.49, on a CPU with AVX-512 BF16 only, tries at import to fetch an "
            "optional 4-bit kernel from the Hugging Face hub through the `kernels` package, and "
            "logs this line when it cannot. qdlib keeps hub kernels off (code from the hub: "
            "qdlib.remote_code.forbid_hub_kernels), so bitsandbytes imports as if `kernels` were "
            "not installed and keeps its own bundled CPU kernels, which give the same results; "
            "there is nothing for a learner to do."
        ),
    ),
)


class _DemoteKnownNotices(logging.Filter):
    """A logger filter that turns the listed messages of one logger into DEBUG records."""

    def __init__(self, notices: tuple[KnownNotice, ...]) -> None:
        super().__init__()
        self.notices = notices

    def filter(self, record: logging.LogRecord) -> bool:
        if any(n.matches(record) for n in self.notices):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            # The logger's own level was checked before filters run: drop it here unless the
            # user asked for DEBUG, so neither a handler nor Python's last-resort stderr shows it.
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


# Python warnings (not log records) that say nothing a learner can act on, and why.
KNOWN_WARNINGS = {
    "Setting `save_embedding_layers`": (
        "peft, at every save when lm_head is a LoRA target (the cpu_tiny profile): it notes that "
        "it saves that layer as an embedding layer, which is what we want."
    ),
    "`is_gradient_checkpointing` is deprecated": (
        "peft 0.21 reads this transformers 5 attribute inside get_peft_model and "
        "PeftModel.from_pretrained, the plain calls lessons 03 and 06 show; the rename is peft's "
        "to make, and the learner's code is right as it is."
    ),
}


def install_notice_filters() -> None:
    """Attach the filters to their loggers (once; loggers exist before their libraries load),
    and ignore :data:`KNOWN_WARNINGS`."""
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message))
    for name in {n.logger for n in KNOWN_NOTICES}:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DemoteKnownNotices) for f in logger.filters):
            mine = tuple(n for n in KNOWN_NOTICES if n.logger == name)
            logger.addFilter(_DemoteKnownNotices(mine))


@contextmanager
def quiet_hf() -> Iterator[None]:
    """Hide transformers' "Loading weights" progress bars: noise in a lesson. Warnings are not
    touched here: only :data:`KNOWN_WARNINGS`, each named, are ignored, everywhere."""
    # not at the top: `import qdlib` (which installs the filters) must not load transformers
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
