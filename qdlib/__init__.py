"""qdlib: the thin library behind the question-decomposition fine-tuning course.

One module per lesson: ``data`` (01), ``model`` (02), ``lora`` (03), ``train`` (04),
``evaluate`` and ``metrics`` (05), ``export`` (06); ``config`` and ``runs`` tie them together.
"""

__version__ = "0.1.0"

# Before any qdlib module imports bitsandbytes, transformers or peft: some of their notices are
# logged at import time (see qdlib/notices.py for each one and why).
from qdlib.notices import install_notice_filters

install_notice_filters()
