"""qdlib: the thin library behind the question-decomposition fine-tuning course.

One module per lesson: ``data`` (01), ``model`` (02), ``lora`` (03), ``train`` (04),
``evaluate`` and ``metrics`` (05), ``export`` (06); ``config`` and ``runs`` tie them together.
"""

__version__ = "0.1.0"
