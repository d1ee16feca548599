"""qdlib: the thin library behind the question-decomposition fine-tuning course.

One module per lesson: ``data`` (01), ``model`` (02), ``lora`` (03), ``train`` (04),
``evaluate`` and ``metrics`` (05), ``export`` (06); ``config`` and ``runs`` tie them together.
"""

__version__ = "0.1.0"

# Before any qdlib module imports bitsandbytes, transformers or peft: hub kernels off (code from
# the hub; bitsandbytes fetches one at import time on some CPUs: qdlib/remote_code.py), and the
# filters for notices logged at import time (qdlib/notices.py says each one and why).
from qdlib.notices import install_notice_filters
from qdlib.remote_code import forbid_hub_kernels

forbid_hub_kernels()
install_notice_filters()
