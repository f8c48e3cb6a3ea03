"""The built-in PII redactor, alone and as an instrumentor on real calls."""

from __future__ import annotations

import openai
import pytest

from rlhfkit import Interaction, Message
from rlhfkit.errors import ValidationError
from rlhfkit.instrument import PIIRedactor, RLHFInstrumentation, redact_pii
from rlhfkit.testing import FakeLLMServer

from .conftest import user


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at jane.doe+x@example.co.uk now", "mail me at [REDACTED_EMAIL] now"),
        ("call +1 415-555-0132 today", "call [REDACTED_PHONE] today"),
        ("card 4111 1111 1111 1111 ok", "card [REDACTED_CARD] ok"),
        ("key sk-proj-abcdefghijklmnop1234 here", "key [REDACTED_API_KEY] here"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: [REDACTED_BEARER]"),
    ],
)
def test_each_kind_is_redacted(text: str, expected: str) -> None:
    """Emails, phone numbers, Luhn-valid cards, API keys and bearer tokens are replaced."""
    assert redact_pii.redact(text) == expected


def test_non_card_numbers_are_left_alone() -> None:
    """A 16-digit number failing the Luhn check and ordinary numbers stay."""
    text = "order 1234 5678 9012 3456 shipped in 2024 for 3 items"
    assert redact_pii.redact(text) == text


def test_redactor_covers_prompt_response_context_and_tools() -> None:
    """Prompt, response, context messages, tool call arguments and the error message are redacted."""
    interaction = Interaction(
        prompt="I am bob@example.com",
        response="Noted, bob@example.com",
        context=[Message(role="system", content="token sk-ant-abcdefghijklmnopqrstu")],
        tool_calls=[{"name": "email", "arguments": '{"to": "bob@example.com"}'}],
    )
    out = PIIRedactor()(interaction)
    assert "bob@example.com" not in out.model_dump_json() and "sk-ant" not in out.model_dump_json()
    assert out.id == interaction.id
    only_email = PIIRedactor(kinds={"email"}, placeholder="<{kind}>")
    assert only_email.redact("bob@example.com 4111111111111111") == "<EMAIL> 4111111111111111"
    with pytest.raises(ValidationError):
        PIIRedactor(kinds={"ssn"})


def test_redactor_as_instrumentor_on_real_calls(server: FakeLLMServer) -> None:
    """Added with add_instrumentor, the redactor cleans captured SDK calls before they are stored."""
    inst = RLHFInstrumentation()
    inst.add_instrumentor(redact_pii)
    client = inst.instrument(openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test"))
    try:
        server.queue_reply("I will email alice@corp.io")
        client.chat.completions.create(
            model="m", messages=user("My card is 5500 0000 0000 0004, email alice@corp.io")
        )
        (i,) = inst.get_interactions()
        assert i.prompt == "My card is [REDACTED_CARD], email [REDACTED_EMAIL]"
        assert i.response == "I will email [REDACTED_EMAIL]"
    finally:
        inst.destroy(timeout_s=1)


@pytest.mark.parametrize("phone", ["+44 20 7946 0958", "(415) 555-0132", "415.555.0132", "+33612345678"])
def test_phone_formats(phone: str) -> None:
    """Common national and international phone formats are redacted."""
    assert redact_pii.redact(f"phone: {phone}.") == "phone: [REDACTED_PHONE]."
