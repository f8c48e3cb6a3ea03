"""Training datasets from logged interactions and feedback.

:func:`export_dataset` turns the feedback in a storage backend into files that
Hugging Face TRL and OpenAI fine-tuning read as they are:

==============  =====================================================  ==========
kind            columns                                                targets
==============  =====================================================  ==========
``preference``  ``prompt`` / ``chosen`` / ``rejected`` [/ ``margin``]  trl, openai
``unpaired``    ``prompt`` / ``completion`` / ``label``                trl
``sft``         ``prompt`` / ``completion`` or ``messages``            trl, openai
``reward``      ``prompt`` / ``response`` / ``score``                  trl
==============  =====================================================  ==========

Example::

    from rlhfkit.datasets import export_dataset

    summary = export_dataset(storage, "preference", "data/", conversational=True, format="parquet")
    # data/preference-train.parquet, data/preference-test.parquet, data/README.md
"""

from ._collect import Judgements
from ._export import DatasetKind, DatasetSummary, export_dataset

__all__ = ["DatasetKind", "DatasetSummary", "Judgements", "export_dataset"]
