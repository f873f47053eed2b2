"""The prompt the paper describes: trigger word + the identity's frequent tags + the style prompt.

``{trigger}`` in a style prompt becomes the identity's trigger word and ``{tags}`` its frequent
tags; a prompt without ``{trigger}`` gets "trigger, tags, " in front (CLIP reads only 77 tokens,
so the identity goes first). Tags already named by the style are not repeated.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..styles.style import Style


@dataclass(frozen=True)
class PromptPair:
    prompt: str
    negative_prompt: str


def _join(*parts: str) -> str:
    return ", ".join(p.strip().strip(",").strip() for p in parts if p and p.strip().strip(","))


def _tidy(text: str) -> str:
    items = [t.strip() for t in text.split(",")]
    return ", ".join(t for t in items if t)


def build_prompt(style: Style, trigger_word: str, tags: list[str] | tuple[str, ...] = (),
                 negative_prompt: str | None = None) -> PromptPair:
    """Compose the positive and negative prompts for ``style`` and one identity."""
    body = style.prompt
    lowered = body.lower()
    fresh_tags = [t.strip() for t in tags if t and t.strip() and t.strip().lower() not in lowered]
    tag_text = ", ".join(fresh_tags)
    if "{trigger}" in body:
        if "{tags}" not in body and tag_text:
            body = body.replace("{trigger}", "{trigger}, {tags}", 1)
        prompt = body.replace("{trigger}", trigger_word.strip()).replace("{tags}", tag_text)
    else:
        prompt = _join(trigger_word, tag_text, body.replace("{tags}", ""))
    negative = style.negative if negative_prompt is None else negative_prompt
    words = set(trigger_word.lower().replace(",", " ").split())
    if words & {"man", "woman"} and "children" not in negative.lower():
        # The reference keeps adult identities adult (its trigger words are "a mature man", ...).
        negative = _join(negative, "children")
    return PromptPair(_tidy(prompt), _tidy(negative))
