"""A realistic, reproducible set of interactions and feedback of all five types.

Used by ``rlhfkit demo``, ``make run`` and tests that need data that looks
like production: several models answering the same prompts, conversations
with context, thumbs, ratings, comments, multi-dimensional reviews and
side-by-side comparisons from several reviewers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from ._logger import RLHFLogger
from ._models import BinaryFeedback, utc_now

__all__ = ["DEMO_MODELS", "populate_demo"]

DEMO_MODELS = ("gpt-4o", "claude-sonnet-4", "llama-3.1-70b")

_PROMPTS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Explain recursion to a ten-year-old.", "Recursion is when something is defined using a smaller copy of itself."),
    ("Write a haiku about autumn rain.", "Cold rain on red leaves / the gutter hums its one song / the kettle answers"),
    ("How do I reverse a list in Python?", "Use my_list.reverse() in place, or my_list[::-1] for a reversed copy."),
    ("Summarise the causes of World War I.", "Militarism, alliances, imperialism and nationalism, sparked by Sarajevo."),
    ("What's a good name for a bakery?", "How about 'Rise & Shine Bakehouse'?"),
    ("Translate 'good morning' into Japanese.", "Ohayou gozaimasu (おはようございます)."),
    ("Is 1729 a special number?", "Yes: it is the smallest number expressible as a sum of two cubes in two ways."),
    ("Give me three tips for better sleep.", "Keep a fixed schedule, avoid screens before bed, keep the room cool."),
    ("What does HTTP 429 mean?", "Too Many Requests: the client is being rate limited; retry after a delay."),
]
_QUALITY = {"gpt-4o": 0.8, "claude-sonnet-4": 0.85, "llama-3.1-70b": 0.6}
_COMMENTS = {
    True: ["Clear and correct.", "Exactly what I needed.", "Great explanation!"],
    False: ["Too vague.", "This answer is incorrect.", "Missed the point of the question."],
}
_REVIEWERS = ("alice", "bob", "chen")


def populate_demo(
    logger: RLHFLogger,
    *,
    rounds: int = 5,
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Log ``rounds`` passes over the demo prompts with every demo model; return counts logged."""
    rng = random.Random(seed)
    counts = {"interactions": 0, "feedback": 0}
    start = utc_now() - timedelta(days=rounds)
    for round_no in range(rounds):
        user = f"user-{round_no % 4}"
        logger.start_session(user_id=user, metadata={"channel": rng.choice(["web", "mobile", "api"])})
        for prompt_no, (prompt, answer) in enumerate(_PROMPTS):
            timestamp = start + timedelta(days=round_no, minutes=prompt_no * 7)
            ids = {}
            for model in DEMO_MODELS:
                good = rng.random() < _QUALITY[model]
                response = answer if good else f"I think {answer[0].lower()}{answer[1:]} But I'm not sure."
                ids[model] = logger.log_interaction(
                    prompt,
                    response,
                    model=model,
                    model_params={"temperature": 0.7, "max_tokens": 256},
                    latency=round(rng.lognormvariate(6.2, 0.4), 1),
                    token_usage={"prompt": 12 + len(prompt) // 4, "completion": len(response) // 4 + 1},
                    user_id=user,
                    context=[{"role": "system", "content": "You are a helpful assistant."}],
                    timestamp=timestamp,
                    metadata={"demo": True, "quality": "good" if good else "poor"},
                )
                counts["interactions"] += 1
                counts["feedback"] += _judge(logger, rng, ids[model], good, user)
            preferred = max(ids, key=lambda m: _QUALITY[m] + rng.random() * 0.3)
            logger.log_comparative_feedback(
                ids[preferred],
                [ids[m] for m in ids if m != preferred],
                reason="More accurate and concise",
                confidence=round(rng.uniform(0.55, 1.0), 2),
                user_id=rng.choice(_REVIEWERS),
                source="demo",
            )
            counts["feedback"] += 1
            if progress is not None:
                progress(len(DEMO_MODELS))
        logger.end_session()
    return counts


def _judge(logger: RLHFLogger, rng: random.Random, interaction_id: str, good: bool, user: str) -> int:
    """Give one interaction a realistic mix of feedback; return how many were logged."""
    logged = 0
    if rng.random() < 0.7:
        thumbs = BinaryFeedback.THUMBS_UP if good else BinaryFeedback.THUMBS_DOWN
        logger.log_binary_feedback(interaction_id, thumbs, user_id=user, source="demo")
        logged += 1
    for reviewer in _REVIEWERS:
        if rng.random() < 0.5:
            base = 4 if good else 2
            rating = min(5, max(1, base + rng.choice([-1, 0, 0, 1])))
            logger.log_rating(interaction_id, rating, None, max_rating=5, user_id=reviewer, source="demo")
            logged += 1
    if rng.random() < 0.3:
        sentiment = "positive" if good else "negative"
        logger.log_text_feedback(interaction_id, rng.choice(_COMMENTS[good]), sentiment, user_id=user, source="demo")
        logged += 1
    if rng.random() < 0.3:
        scores = [4, 5] if good else [1, 2, 3]
        logger.log_multi_dimensional_feedback(
            interaction_id,
            {name: rng.choice(scores) for name in ("accuracy", "helpfulness", "clarity")},
            weights={"accuracy": 0.5, "helpfulness": 0.3, "clarity": 0.2},
            user_id=rng.choice(_REVIEWERS),
            source="demo",
        )
        logged += 1
    return logged
