"""Auto-instrumentation: capture every call of the OpenAI and Anthropic SDKs as Interaction records.

Example::

    from rlhfkit.instrument import RLHFInstrumentation

    instrumentation = RLHFInstrumentation(sample_rate=1.0)
    client = instrumentation.instrument(openai.OpenAI())
    with instrumentation.context(user_id="u-1", session_id="s-1"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    instrumentation.get_interactions()[-1].prompt   # 'Hi'

The SDKs are imported only when a client of theirs is instrumented.
"""

from ._build import SPEC_FEEDBACK_TYPES, feedback_from_event
from ._capture import CapturedCall
from ._chain import Instrumentor, Middleware
from ._config import InstrumentationConfig, StorageKind
from ._context import RequestContext, context, process_context, request_context
from ._core import EVENTS, RLHFInstrumentation, create_instrumentation
from ._metrics import InstrumentationMetrics, normalize_prompt
from ._redact import PIIRedactor, redact_pii
from ._web import (
    SCREEN_RESOLUTION_HEADER,
    RLHFContextMiddleware,
    RLHFWSGIMiddleware,
    device_type,
    rlhf_wsgi_middleware,
)

__all__ = [
    "EVENTS",
    "SCREEN_RESOLUTION_HEADER",
    "SPEC_FEEDBACK_TYPES",
    "CapturedCall",
    "InstrumentationConfig",
    "InstrumentationMetrics",
    "Instrumentor",
    "Middleware",
    "PIIRedactor",
    "RLHFContextMiddleware",
    "RLHFInstrumentation",
    "RLHFWSGIMiddleware",
    "RequestContext",
    "StorageKind",
    "context",
    "create_instrumentation",
    "device_type",
    "feedback_from_event",
    "normalize_prompt",
    "process_context",
    "redact_pii",
    "request_context",
    "rlhf_wsgi_middleware",
]
